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

/** Messages being handled at once; beyond it mqtt.js reads no further packet until one finishes (backpressure). */
const MAX_IN_FLIGHT = 1_000;

interface Incoming {
  messageId: number;
  handled: boolean;
  /** The PUBACK mqtt.js wanted to send, held until this message and all before it are handled. */
  puback?: unknown;
}

type SendPacket = (packet: { cmd: string; messageId?: number }, cb?: (error?: Error) => void, ...rest: unknown[]) => void;

/**
 * The gateway's connection to the broker: publish with a promise settled on PUBACK, and subscriptions
 * routed to handlers by topic filter. Incoming messages are handled concurrently (one slow message
 * never holds up the others, nor the PUBACKs of the gateway's own publishes), but each is acknowledged
 * only after its handlers have finished, and PUBACKs go out in the order the messages arrived (MQTT
 * 3.1.1 §4.6): a crash mid-handling leaves the message with the broker to deliver again. mqtt.js
 * reconnects and resubscribes on its own; acknowledgements still held when a connection closes are
 * dropped (the broker delivers those messages again in a persistent session).
 */
export class MqttConnection {
  private readonly routes: Array<{ filter: string; handler: MessageHandler; ackAfterHandling: boolean }> = [];
  /** QoS 1 messages of the current connection whose PUBACK is not sent yet, in arrival order. */
  private incoming: Incoming[] = [];
  private inFlight = 0;
  private resumeReading?: () => void;

  private constructor(
    readonly client: MqttClient,
    private readonly publishTimeoutMs: number,
  ) {
    const sendPacket = (client as unknown as { _sendPacket: SendPacket })._sendPacket.bind(client);
    (client as unknown as { _sendPacket: SendPacket })._sendPacket = (packet, cb, ...rest) => {
      const held = packet.cmd === "puback" ? this.incoming.find((m) => m.messageId === packet.messageId && !m.puback) : undefined;
      if (!held) return sendPacket(packet, cb, ...rest);
      held.puback = packet;
      // mqtt.js reads the next packet once this callback runs: the acknowledgement itself waits.
      process.nextTick(() => cb?.());
      this.flushAcks(sendPacket);
    };
    client.on("close", () => {
      this.incoming = [];
    });
    client.handleMessage = (packet, done) => {
      if (packet.cmd !== "publish") return done();
      const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
      const waitFor: Array<Promise<void>> = [];
      for (const route of this.routes) {
        if (!topicMatches(route.filter, packet.topic)) continue;
        const handling = Promise.resolve().then(() => route.handler(packet.topic, payload));
        if (route.ackAfterHandling) waitFor.push(handling);
      }
      if (packet.qos !== 1 || waitFor.length === 0) return done();
      const message: Incoming = { messageId: packet.messageId!, handled: false };
      const batch = this.incoming;
      batch.push(message);
      this.inFlight++;
      void Promise.allSettled(waitFor).then(() => {
        message.handled = true;
        this.inFlight--;
        // A message of a connection that closed meanwhile is not acknowledged on the next one.
        if (batch === this.incoming) this.flushAcks(sendPacket);
        const resume = this.resumeReading;
        if (resume && this.inFlight < MAX_IN_FLIGHT) {
          this.resumeReading = undefined;
          resume();
        }
      });
      if (this.inFlight >= MAX_IN_FLIGHT) this.resumeReading = () => done();
      else done();
    };
  }

  /** Sends the PUBACKs whose messages, and every message before them, are handled. */
  private flushAcks(sendPacket: SendPacket): void {
    while (this.incoming.length > 0 && this.incoming[0]!.handled && this.incoming[0]!.puback) {
      sendPacket(this.incoming.shift()!.puback as { cmd: string });
    }
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

  /** Runs `listener` each time the connection to the broker is back after a loss. */
  onReconnected(listener: () => void): void {
    this.client.on("connect", listener);
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
