import { createHash, timingSafeEqual } from "node:crypto";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { Aedes } from "aedes";
import type { AuthenticateError, Client, ConnectPacket, PublishPacket, Subscription } from "aedes";
import { systemClock } from "../clock";
import { ThrottledLog } from "../common/throttled-log";
import { TokenBuckets } from "../common/token-bucket";
import type { Logger } from "../logger";
import { DEVICE_ID_PATTERN } from "../mqtt/topics";
import type { Topics } from "../mqtt/topics";
import { guardPacketSizes } from "./packet-size-guard";

/** Which client ids are devices; asked at every CONNECT, so it must answer from memory. */
export interface DeviceRegistry {
  isRegisteredDevice(id: string): boolean;
}

export type MqttRefusal =
  | { action: "connect"; reason: "bad_gateway_password" | "invalid_client_id" | "unregistered_device" | "will_not_allowed" }
  | { action: "publish"; reason: "reserved_topic" | "too_large" | "not_allowed" | "retain_not_allowed" | "rate_limited" }
  | { action: "subscribe"; reason: "not_allowed" }
  | { action: "packet"; reason: "oversized" };

export interface EmbeddedBrokerOptions {
  /** First port to try; if taken, the next ones (up to 100). 0: any free port. */
  port: number;
  /** Default "127.0.0.1": devices on other hosts only when asked for (MQTT_HOST), as device ids are their only credential. */
  host?: string;
  topics: Topics;
  /** The gateway's own connections authenticate with these and may publish and subscribe anything. */
  gatewayCredentials: { username: string; password: string };
  /** Any other client must be a registered device: others are refused at CONNECT, before they can reach the gateway. */
  devices: DeviceRegistry;
  /** Largest publish payload accepted; default 256 KiB. */
  maxMessageBytes?: number;
  /** Messages one device may publish per second, with ten seconds' worth as a burst; default 100. Beyond: disconnected. */
  maxMessagesPerSecond?: number;
  /** Told of every refusal (for /metrics). */
  onRefused?: (refusal: MqttRefusal) => void;
  log: Logger;
}

export interface EmbeddedBroker {
  /** Where the gateway itself connects, e.g. `mqtt://127.0.0.1:1883`. */
  readonly url: string;
  /** The port actually bound (may differ from the one asked for). */
  readonly port: number;
  /** Disconnects every client and stops listening. Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024;
const DEFAULT_MAX_MESSAGES_PER_SECOND = 100;
const BURST_SECONDS = 10;
/** Room for a publish's topic (at most 64 KiB by MQTT) and headers on top of its payload. */
const PACKET_OVERHEAD_BYTES = 64 * 1024 + 16;
/** A CONNECT holds a client id, credentials and a will (a device's is its presence): far less than this. */
const MAX_CONNECT_BYTES = 16 * 1024;
/** Presence is `{"online":true}`; a retained message is kept in memory until replaced. */
const MAX_RETAINED_BYTES = 1024;
const PORT_ATTEMPTS = 100;

// CONNACK return codes of MQTT 3.1.1.
const IDENTIFIER_REJECTED = 2;
const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;

/**
 * An in-process MQTT 3.1.1 broker (aedes) for running without an external one, with the ACL of CONTRACT §5:
 * the gateway's connections may do anything; any other client is a device, identified by its client id, that may
 * publish only its own replies, presence and telemetry and subscribe only to its own commands.
 */
export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const log = opts.log.child({ component: "embedded-broker" });
  const refusals = new ThrottledLog(log);
  const refused = (refusal: MqttRefusal, fields: Record<string, unknown>, message: string) => {
    opts.onRefused?.(refusal);
    refusals.warn(`${refusal.action}:${refusal.reason}`, fields, message);
  };
  const maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const perSecond = opts.maxMessagesPerSecond ?? DEFAULT_MAX_MESSAGES_PER_SECOND;
  const acl = createAcl({
    topics: opts.topics,
    gateway: opts.gatewayCredentials,
    devices: opts.devices,
    maxMessageBytes,
    rates: new TokenBuckets(perSecond * 60, systemClock, perSecond * BURST_SECONDS),
    refused,
  });
  const broker = await Aedes.createBroker({
    // No global queue in aedes' mqemitter: past `concurrency` messages in flight it queues the rest and
    // drains them recursively, one stack frame chain per message, so a burst of a few thousand (devices'
    // wills after a network cut, behind one slow subscriber) overflowed the stack and killed the gateway.
    // Each client's own batch stays bounded by aedes; nothing else needs the global one.
    concurrency: 0,
    preConnect: acl.preConnect,
    authenticate: acl.authenticate,
    authorizePublish: acl.authorizePublish,
    authorizeSubscribe: acl.authorizeSubscribe,
  });
  broker.on("clientDisconnect", acl.forget);
  broker.on("clientError", (client, err) => log.debug({ clientId: client.id, err: err.message }, "MQTT client error"));

  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on("close", () => sockets.delete(socket));
    const limits = { firstPacketBytes: MAX_CONNECT_BYTES, packetBytes: maxMessageBytes + PACKET_OVERHEAD_BYTES };
    const guarded = guardPacketSizes(socket, limits, (announcedBytes) =>
      refused({ action: "packet", reason: "oversized" }, { remoteAddress: socket.remoteAddress, announcedBytes }, "MQTT connection closed: packet too large"),
    );
    broker.handle(guarded);
  });

  const host = opts.host ?? "127.0.0.1";
  let port: number;
  try {
    port = await listenFromPort(server, host, opts.port);
  } catch (err) {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    throw err;
  }
  log.info({ port, host, ...(opts.port !== 0 && port !== opts.port ? { requestedPort: opts.port } : {}) }, "embedded MQTT broker listening");

  const localHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `mqtt://${localHost}:${port}`,
    port,
    close: () =>
      (closing ??= (async () => {
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        await new Promise<void>((resolve) => broker.close(() => resolve()));
        // Connections that never sent CONNECT are not aedes clients yet; they would hold server.close() open.
        for (const socket of sockets) socket.destroy();
        await serverClosed;
        log.info({ port }, "embedded MQTT broker closed");
      })()),
  };
}

/** Binds `port`, or the next free one when it is taken; port 0 lets the OS choose. */
async function listenFromPort(server: net.Server, host: string, port: number): Promise<number> {
  const attempts = port === 0 ? 1 : PORT_ATTEMPTS;
  for (let i = 0; i < attempts && port + i <= 65535; i++) {
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        server.once("error", onError);
        server.listen({ port: port + i, host, exclusive: true }, () => {
          server.off("error", onError);
          resolve();
        });
      });
      return (server.address() as AddressInfo).port;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    }
  }
  throw new Error(`embedded MQTT broker: ports ${port}..${Math.min(port + attempts - 1, 65535)} on ${host} are all in use; set MQTT_PORT`);
}

interface Acl {
  preConnect(client: Client, packet: ConnectPacket, callback: (error: Error | null, success: boolean) => void): void;
  authenticate(
    client: Client,
    username: Readonly<string | undefined>,
    password: Readonly<Buffer | undefined>,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void;
  authorizePublish(client: Client | null, packet: PublishPacket, callback: (error?: Error | null) => void): void;
  authorizeSubscribe(client: Client, sub: Subscription, callback: (error: Error | null, subscription?: Subscription | null) => void): void;
  forget(client: Client): void;
}

interface AclOptions {
  topics: Topics;
  gateway: { username: string; password: string };
  devices: DeviceRegistry;
  maxMessageBytes: number;
  /** Per device client id. */
  rates: TokenBuckets;
  refused(refusal: MqttRefusal, fields: Record<string, unknown>, message: string): void;
}

function createAcl({ topics, gateway, devices, maxMessageBytes, rates, refused }: AclOptions): Acl {
  /** Connections that presented the gateway's credentials. */
  const gatewayClients = new WeakSet<Client>();
  /** Client ids the gateway's connections hold now: a device may not take one over (MQTT would disconnect the gateway). */
  const gatewayIds = new Map<string, Client>();
  /** What aedes does not give authenticate(): the client id as sent (aedes invents one for an empty id) and the will. */
  const connects = new WeakMap<Client, { clientId: string; will: ConnectPacket["will"] }>();

  const refuse = (returnCode: number, message: string): AuthenticateError => Object.assign(new Error(message), { returnCode });

  return {
    preConnect(client, packet, callback) {
      connects.set(client, { clientId: packet.clientId, will: packet.will });
      callback(null, true);
    },

    authenticate(client, username, password, done) {
      const connect = connects.get(client);
      if (username !== undefined && secretEquals(username, gateway.username)) {
        if (password === undefined || !secretEquals(password, gateway.password)) {
          refused({ action: "connect", reason: "bad_gateway_password" }, { clientId: client.id }, "MQTT connection refused: wrong gateway password");
          return done(refuse(BAD_USERNAME_OR_PASSWORD, "bad user name or password"), false);
        }
        gatewayClients.add(client);
        gatewayIds.set(client.id, client);
        return done(null, true);
      }
      // Anyone else is a device; devices have no password (CONTRACT §5), their client id is their identity.
      const clientId = connect?.clientId ?? "";
      if (!DEVICE_ID_PATTERN.test(clientId) || gatewayIds.has(clientId)) {
        refused({ action: "connect", reason: "invalid_client_id" }, { clientId }, "MQTT connection refused: not a valid device id");
        return done(refuse(IDENTIFIER_REJECTED, "identifier rejected"), false);
      }
      // Only registered devices get in: what an unknown client would publish never reaches the gateway or the store.
      if (!devices.isRegisteredDevice(clientId)) {
        refused({ action: "connect", reason: "unregistered_device" }, { clientId }, "MQTT connection refused: not a registered device");
        return done(refuse(NOT_AUTHORIZED, "not a registered device"), false);
      }
      // A will is a publish made later on the device's behalf: refuse the connection now rather than drop it then.
      if (connect?.will && (!devicePublishAllowed(clientId, connect.will.topic) || !retainAllowed(clientId, connect.will))) {
        refused({ action: "connect", reason: "will_not_allowed" }, { clientId, topic: connect.will.topic }, "MQTT connection refused: will not allowed for this device");
        return done(refuse(NOT_AUTHORIZED, "will topic not allowed"), false);
      }
      return done(null, true);
    },

    // Also called by aedes for wills (at the device's disconnect), so they get the same rules. MQTT 3.1.1 cannot
    // refuse one publish: an error here makes aedes close the connection.
    authorizePublish(client, packet, callback) {
      if (packet.topic.startsWith("$SYS")) {
        refused({ action: "publish", reason: "reserved_topic" }, { clientId: client?.id, topic: packet.topic }, "MQTT publish refused: $SYS topics are reserved");
        return callback(new Error("$SYS topics are reserved"));
      }
      const size = payloadBytes(packet);
      if (size > maxMessageBytes) {
        refused({ action: "publish", reason: "too_large" }, { clientId: client?.id, topic: packet.topic, size, maxMessageBytes }, "MQTT publish refused: payload too large");
        return callback(new Error("payload too large"));
      }
      if (client && gatewayClients.has(client)) return callback(null);
      // A null client is a will left by a broker instance that is gone; there is only this one, so refuse.
      if (!client || !devicePublishAllowed(client.id, packet.topic)) {
        refused({ action: "publish", reason: "not_allowed" }, { clientId: client?.id, topic: packet.topic }, "MQTT publish refused: topic not allowed for this device");
        return callback(new Error("publish not authorized"));
      }
      // Retained messages stay in the broker's memory: the contract retains presence only.
      if (!retainAllowed(client.id, packet)) {
        refused({ action: "publish", reason: "retain_not_allowed" }, { clientId: client.id, topic: packet.topic, size }, "MQTT publish refused: only a small presence may be retained");
        return callback(new Error("retain not allowed"));
      }
      if (!rates.take(client.id).allowed) {
        refused({ action: "publish", reason: "rate_limited" }, { clientId: client.id }, "MQTT publish refused: device over its message rate; disconnected");
        return callback(new Error("message rate exceeded"));
      }
      callback(null);
    },

    // A refused subscription is granted 128 (failure) in the SUBACK; the connection stays open.
    authorizeSubscribe(client, sub, callback) {
      if (gatewayClients.has(client) || sub.topic === topics.commands(client.id)) return callback(null, sub);
      refused({ action: "subscribe", reason: "not_allowed" }, { clientId: client.id, topic: sub.topic }, "MQTT subscription refused: topic not allowed for this device");
      callback(null, null);
    },

    forget(client) {
      if (gatewayIds.get(client.id) === client) gatewayIds.delete(client.id);
    },
  };

  function devicePublishAllowed(deviceId: string, topic: string): boolean {
    const parsed = topics.parseDeviceTopic(topic);
    return parsed !== undefined && parsed.deviceId === deviceId && parsed.kind !== "commands";
  }

  function retainAllowed(deviceId: string, message: { topic: string; retain?: boolean; payload: string | Buffer }): boolean {
    return !message.retain || (message.topic === topics.presence(deviceId) && payloadBytes(message) <= MAX_RETAINED_BYTES);
  }
}

function payloadBytes(message: { payload: string | Buffer }): number {
  return typeof message.payload === "string" ? Buffer.byteLength(message.payload) : message.payload.length;
}

/** Constant-time whatever the lengths: compares fixed-size digests. */
function secretEquals(given: string | Buffer, expected: string): boolean {
  const digest = (value: string | Buffer) => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(given), digest(expected));
}
