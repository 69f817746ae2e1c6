import { connect, type IClientPublishOptions, type MqttClient } from "mqtt";
import type { Logger } from "../logger";
import { disableNagle } from "./no-delay";

export type MessageHandler = (topic: string, payload: Buffer) => Promise<void> | void;

export interface MqttConnectionOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  /** Publishes that the broker does not acknowledge by then are reported as failed (the caller retries). */
  publishTimeoutMs?: number;
  /**
   * Keep the broker session across reconnects and restarts (needs a stable client id): QoS 1 messages
   * that arrive while the gateway is away, or that it had not finished handling, are delivered again.
   */
  persistentSession?: boolean;
  log: Logger;
}

/**
 * The gateway's connection to the broker: publish with a promise settled on PUBACK, and subscriptions
 * routed to handlers by topic filter. An incoming message is acknowledged only after its handlers have
 * finished (mqtt.js `handleMessage`), so a crash mid-handling leaves it with the broker to deliver
 * again. mqtt.js reconnects and resubscribes on its own.
 */
export class MqttConnection {
  private readonly routes: Array<{ filter: string; handler: MessageHandler; ackAfterHandling: boolean }> = [];

  private constructor(
    readonly client: MqttClient,
    private readonly publishTimeoutMs: number,
  ) {
    // mqtt.js handles incoming packets one at a time, PUBACKs of our own publishes included: only
    // handlers that must finish before the broker may forget the message are waited for.
    client.handleMessage = (packet, done) => {
      if (packet.cmd !== "publish") return done();
      const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
      const waitFor: Array<Promise<void>> = [];
      for (const route of this.routes) {
        if (!topicMatches(route.filter, packet.topic)) continue;
        const handling = Promise.resolve().then(() => route.handler(packet.topic, payload));
        if (route.ackAfterHandling) waitFor.push(handling);
      }
      Promise.allSettled(waitFor).then(() => done());
    };
  }

  static async open(options: MqttConnectionOptions): Promise<MqttConnection> {
    const client = connect(options.url, {
      clientId: options.clientId,
      username: options.username,
      password: options.password,
      protocolVersion: 4,
      clean: !options.persistentSession,
      reconnectPeriod: 1_000,
      connectTimeout: 5_000,
      keepalive: 15,
    });
    disableNagle(client);
    const log = options.log.child({ component: "mqtt" });
    client.on("reconnect", () => log.debug("broker reconnecting"));
    client.on("offline", () => log.warn("broker connection lost"));
    client.on("error", (error) => log.warn({ err: error.message }, "broker error"));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.end(true);
        reject(new Error(`MQTT broker at ${options.url} did not accept a connection within 10 s`));
      }, 10_000);
      client.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    client.on("connect", () => log.info("broker connected"));
    return new MqttConnection(client, options.publishTimeoutMs ?? 10_000);
  }

  isConnected(): boolean {
    return this.client.connected;
  }

  /**
   * Resolves once the broker has acknowledged the message (PUBACK for QoS 1). `onAcked` runs
   * synchronously with the PUBACK, before any message that arrived after it is handled.
   */
  publish(topic: string, payload: string | Buffer, options: IClientPublishOptions = { qos: 1 }, onAcked?: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`publish to ${topic} not acknowledged in ${this.publishTimeoutMs} ms`)), this.publishTimeoutMs);
      this.client.publish(topic, payload, options, (error) => {
        clearTimeout(timer);
        if (error) return reject(error);
        onAcked?.();
        resolve();
      });
    });
  }

  /**
   * Subscribes `filter` (through `$share/{group}/` when a group is given) and routes matching messages
   * to `handler`. With `ackAfterHandling` the broker gets its PUBACK only once the handler is done, so
   * a message whose handling a crash interrupted is delivered again (with a persistent session).
   */
  async subscribe(filter: string, handler: MessageHandler, options: { sharedGroup?: string; ackAfterHandling?: boolean } = {}): Promise<void> {
    const { sharedGroup, ackAfterHandling = false } = options;
    this.routes.push({ filter, handler, ackAfterHandling });
    const subscription = sharedGroup ? `$share/${sharedGroup}/${filter}` : filter;
    const granted = await this.client.subscribeAsync(subscription, { qos: 1 });
    if (granted.some((g) => g.qos === 128)) throw new Error(`broker refused subscription to ${subscription}`);
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}

/** MQTT topic filter matching (`+` one level, `#` the rest). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
