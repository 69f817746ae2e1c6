import type { MqttConnection } from "../mqtt/connection";
import type { Topics } from "../mqtt/topics";

type Listener = ((event: Event) => void) | { handleEvent(event: Event): void };

/**
 * An EventTarget whose events travel through the MQTT broker (modelled on graphql-yoga's
 * redis-event-target), so a subscriber on any replica sees what any replica publishes.
 * `dispatchEvent` publishes JSON; the broker echoes it to every subscribed replica, this one included,
 * which keeps the order of one replica's events the same for every subscriber.
 */
export class MqttEventTarget {
  private readonly listeners = new Map<string, Set<Listener>>();

  private constructor(
    private readonly mqtt: MqttConnection,
    private readonly topics: Topics,
    private readonly revive: (type: string, data: unknown) => unknown,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Subscribes to the whole bus up front, so no event is missed while a first listener's subscription is set up. */
  static async open(
    mqtt: MqttConnection,
    topics: Topics,
    revive: (type: string, data: unknown) => unknown,
    onError: (error: unknown) => void,
  ): Promise<MqttEventTarget> {
    const target = new MqttEventTarget(mqtt, topics, revive, onError);
    const prefix = topics.bus("");
    await mqtt.subscribe(topics.busFilter(), (topic, payload) => target.deliver(topic.slice(prefix.length), payload));
    return target;
  }

  addEventListener(type: string, listener: Listener | null): void {
    if (!listener) return;
    let set = this.listeners.get(type);
    if (!set) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(listener);
  }

  removeEventListener(type: string, listener: Listener | null): void {
    if (listener) this.listeners.get(type)?.delete(listener);
  }

  dispatchEvent(event: Event): boolean {
    const detail = (event as CustomEvent).detail;
    this.mqtt.publish(this.topics.bus(event.type), JSON.stringify(detail), { qos: 1 }).catch(this.onError);
    return true;
  }

  private deliver(type: string, payload: Buffer): void {
    const listeners = this.listeners.get(type);
    if (!listeners?.size) return;
    let detail: unknown;
    try {
      detail = this.revive(type, JSON.parse(payload.toString("utf8")));
    } catch (error) {
      this.onError(error);
      return;
    }
    const event = new CustomEvent(type, { detail });
    for (const listener of listeners) {
      if (typeof listener === "function") listener(event);
      else listener.handleEvent(event);
    }
  }
}
