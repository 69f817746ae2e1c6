import { EventEmitter } from "node:events";
import mqtt, { type MqttClient } from "mqtt";
import pino from "pino";
import { systemClock, type Clock } from "../clock";
import type { Logger } from "../logger";
import { disableNagle } from "../mqtt/no-delay";
import { createTopics, DEVICE_ID_PATTERN } from "../mqtt/topics";

/** A command as the gateway publishes it on `{p}/devices/{id}/commands` (CONTRACT §5). */
export interface DeviceCommand {
  id: string;
  type: string;
  payload: Record<string, unknown>;
  attempt: number;
  issuedAt: string;
  expiresAt: string | null;
  /** W3C trace context of the gateway's publish (CONTRACT §6.5), echoed in every reply so they join its trace. */
  traceparent?: string;
}

export interface DeviceError {
  code: string;
  message?: string;
}

/** What the device's business logic answers: success (optionally with its new state) or an error. */
export type CommandOutcome = { result?: Record<string, unknown> } | { error: DeviceError };
export type CommandHandler = (command: DeviceCommand) => Promise<CommandOutcome> | CommandOutcome;

/**
 * Every reply carries the attempt it answers, so the gateway can ignore replies to an older attempt,
 * and the command's traceparent when it had one.
 */
export type DeviceReply = (
  | { id: string; status: "DELIVERED"; attempt: number }
  | { id: string; status: "SUCCEEDED"; result: Record<string, unknown>; attempt: number }
  | { id: string; status: "FAILED"; error: DeviceError; attempt: number }
) & { traceparent?: string };

/** The final answer the device gave for a command id: what makes redelivery and retry safe. */
export type ExecutionOutcome =
  | { status: "SUCCEEDED"; attempt: number; result: Record<string, unknown> }
  | { status: "FAILED"; attempt: number; error: DeviceError };

/** Where a device remembers its outcomes; may be async (e.g. flash storage on a real device). */
export interface ExecutionStore {
  get(commandId: string): ExecutionOutcome | undefined | Promise<ExecutionOutcome | undefined>;
  set(commandId: string, outcome: ExecutionOutcome): void | Promise<void>;
}

const DEFAULT_MEMORY_CAPACITY = 10_000;

/** Keeps the outcomes of the most recently answered ids; older ids are forgotten first. */
export class MemoryExecutionStore implements ExecutionStore {
  private readonly outcomes = new Map<string, ExecutionOutcome>();

  constructor(private readonly capacity = DEFAULT_MEMORY_CAPACITY) {}

  get(commandId: string): ExecutionOutcome | undefined {
    return this.outcomes.get(commandId);
  }

  set(commandId: string, outcome: ExecutionOutcome): void {
    rememberBounded(this.outcomes, commandId, outcome, this.capacity);
  }
}

export interface DeviceClientOptions {
  deviceId: string;
  brokerUrl: string;
  topicPrefix?: string;
  handler: CommandHandler;
  username?: string;
  password?: string;
  /** 4 = MQTT 3.1.1 (default: what aedes and Mosquitto both speak), 5 = MQTT 5. */
  protocolVersion?: 3 | 4 | 5;
  /** false (default): a persistent session, so QoS 1 commands sent while briefly offline are still delivered. */
  clean?: boolean;
  log?: Logger;
  /** Keep the same store across stop()/start() to simulate a reboot that remembers what it executed. */
  store?: ExecutionStore;
  /** Simulation hook: return true to swallow a command entirely (no reply at all), as if it were lost. */
  drop?: (command: DeviceCommand) => boolean;
  /** The device's clock, for `expiresAt`. */
  clock?: Clock;
}

export interface DeviceClientEvents {
  command: [command: DeviceCommand];
  reply: [reply: DeviceReply];
  /** Subscribed to its commands and presence `{"online":true}` published (after every (re)connect). */
  online: [];
  offline: [];
}

/** Shared by every client created without a logger (a bench may run thousands). */
const SILENT = pino({ enabled: false });
const ONLINE = JSON.stringify({ online: true });
const OFFLINE = JSON.stringify({ online: false });
const RECONNECT_PERIOD_MS = 500;
const CONNECT_TIMEOUT_MS = 5_000;
const KEEPALIVE_SECONDS = 30;
/** A graceful stop waits this long for in-flight publishes before it cuts the connection. */
const STOP_TIMEOUT_MS = 2_000;

interface Running {
  attempt: number;
  done: Promise<void>;
}

/**
 * The device side of the protocol: presence with a last will, commands in, replies out, and the
 * execution-key rules that make a redelivered or retried command safe to receive.
 */
export class DeviceClient extends EventEmitter<DeviceClientEvents> {
  readonly deviceId: string;
  /** Handler runs per command id (the most recent ids only, like the store). */
  readonly executions = new Map<string, number>();
  private receivedCount = 0;
  private executedCount = 0;
  private repliedCount = 0;

  private readonly topics: { commands: string; replies: string; presence: string; telemetry: string };
  private readonly store: ExecutionStore;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly running = new Map<string, Running>();
  private client: MqttClient | undefined;
  private isOnline = false;
  /** Bumped on every connect and stop, so the announcement of a superseded connection is abandoned. */
  private generation = 0;
  private pendingStart: { resolve: () => void; reject: (err: Error) => void } | undefined;

  constructor(private readonly options: DeviceClientOptions) {
    super();
    if (!DEVICE_ID_PATTERN.test(options.deviceId)) throw new Error(`invalid device id: ${JSON.stringify(options.deviceId)}`);
    this.deviceId = options.deviceId;
    const topics = createTopics(options.topicPrefix ?? "iot");
    this.topics = {
      commands: topics.commands(this.deviceId),
      replies: topics.replies(this.deviceId),
      presence: topics.presence(this.deviceId),
      telemetry: topics.telemetry(this.deviceId),
    };
    this.store = options.store ?? new MemoryExecutionStore();
    this.log = (options.log ?? SILENT).child({ deviceId: this.deviceId });
    this.clock = options.clock ?? systemClock;
  }

  /** Well-formed commands received (dropped ones included). */
  get received(): number {
    return this.receivedCount;
  }

  /** Handler runs in total. */
  get executed(): number {
    return this.executedCount;
  }

  /** Replies handed to the MQTT client. */
  get replied(): number {
    return this.repliedCount;
  }

  get online(): boolean {
    return this.isOnline;
  }

  /**
   * Connects and resolves once subscribed and announced online. Rejects (and gives up) if the first
   * connection fails, e.g. broker unreachable or credentials refused; later drops reconnect by themselves.
   */
  async start(): Promise<void> {
    if (this.client) throw new Error(`device ${this.deviceId} already started`);
    const { options } = this;
    const client = mqtt.connect(options.brokerUrl, {
      clientId: this.deviceId,
      username: options.username,
      password: options.password,
      protocolVersion: options.protocolVersion ?? 4,
      clean: options.clean ?? false,
      keepalive: KEEPALIVE_SECONDS,
      reconnectPeriod: RECONNECT_PERIOD_MS,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // We subscribe ourselves on every connect, before announcing presence.
      resubscribe: false,
      will: { topic: this.topics.presence, payload: Buffer.from(OFFLINE), qos: 1, retain: true },
    });
    this.client = client;
    disableNagle(client);
    client.on("connect", () => void this.announce(client));
    client.on("message", (topic, payload) => this.onMessage(topic, payload));
    client.on("close", () => {
      if (client === this.client) this.setOnline(false);
    });
    client.on("error", (err) => {
      this.log.warn({ err: err.message }, "device connection error");
      this.pendingStart?.reject(err);
    });
    try {
      await new Promise<void>((resolve, reject) => {
        this.pendingStart = { resolve, reject };
      });
    } catch (err) {
      if (client === this.client) this.client = undefined;
      client.end(true);
      throw err;
    } finally {
      this.pendingStart = undefined;
    }
  }

  /**
   * graceful (default): presence `{"online":false}`, then DISCONNECT (which discards the will).
   * graceful=false simulates a crash: the socket is cut without DISCONNECT, so the broker publishes the will.
   */
  async stop({ graceful = true }: { graceful?: boolean } = {}): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.client = undefined;
    this.generation++;
    this.pendingStart?.reject(new Error(`device ${this.deviceId} stopped before it came online`));
    this.setOnline(false);
    if (!graceful || !client.connected) {
      await client.endAsync(true);
      return;
    }
    client.publish(this.topics.presence, OFFLINE, { qos: 1, retain: true });
    // end(false) waits for the presence (and any reply) to be acknowledged; a dying link must not hang it.
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS, "timeout")));
    const outcome = await Promise.race([client.endAsync(false), timedOut]);
    clearTimeout(timer);
    if (outcome === "timeout") client.stream.destroy();
  }

  publishTelemetry(telemetry: Record<string, unknown>): Promise<void> {
    const client = this.client;
    if (!client) return Promise.reject(new Error(`device ${this.deviceId} is not started`));
    return client.publishAsync(this.topics.telemetry, JSON.stringify(telemetry), { qos: 1 }).then(() => undefined);
  }

  /** Subscribe first, then announce: the gateway sends commands as soon as it sees presence. */
  private async announce(client: MqttClient): Promise<void> {
    const generation = ++this.generation;
    const superseded = () => generation !== this.generation || client !== this.client;
    try {
      await client.subscribeAsync(this.topics.commands, { qos: 1 });
      if (superseded()) return;
      await client.publishAsync(this.topics.presence, ONLINE, { qos: 1, retain: true });
      if (superseded()) return;
      this.setOnline(true);
      this.pendingStart?.resolve();
    } catch (err) {
      if (superseded()) return;
      this.log.error({ err: (err as Error).message }, "could not subscribe to commands or announce presence");
      this.pendingStart?.reject(err as Error);
    }
  }

  private setOnline(online: boolean): void {
    if (online === this.isOnline) return;
    this.isOnline = online;
    this.emit(online ? "online" : "offline");
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (topic !== this.topics.commands) return;
    const command = parseCommand(payload);
    if (!command) {
      this.log.warn({ payload: payload.toString("utf8", 0, 200) }, "ignored malformed command");
      return;
    }
    this.receivedCount++;
    this.emit("command", command);
    if (this.options.drop?.(command)) return;
    this.process(command, false).catch((err: Error) => this.log.error({ err: err.message, commandId: command.id }, "command processing failed"));
  }

  /**
   * Applies the execution-key rules. Every delivery is acknowledged with DELIVERED. While the same id is
   * in progress, a duplicate gets only DELIVERED (the running execution answers it); a higher attempt
   * waits for it and is then decided like any other delivery (answered from the outcome, or run again
   * if that outcome was FAILED).
   */
  private async process(command: DeviceCommand, acknowledged: boolean): Promise<void> {
    const inProgress = this.running.get(command.id);
    if (inProgress) {
      if (!acknowledged) this.reply(command, { id: command.id, status: "DELIVERED", attempt: command.attempt });
      if (command.attempt > inProgress.attempt) {
        await inProgress.done;
        await this.process(command, true);
      }
      return;
    }
    let finished!: () => void;
    this.running.set(command.id, { attempt: command.attempt, done: new Promise<void>((resolve) => (finished = resolve)) });
    try {
      if (!acknowledged) this.reply(command, { id: command.id, status: "DELIVERED", attempt: command.attempt });
      const outcome = await this.decide(command);
      this.reply(
        command,
        outcome.status === "SUCCEEDED"
          ? { id: command.id, status: "SUCCEEDED", result: outcome.result, attempt: command.attempt }
          : { id: command.id, status: "FAILED", error: outcome.error, attempt: command.attempt },
      );
    } finally {
      this.running.delete(command.id);
      finished();
    }
  }

  /** The outcome to answer with: the stored one when the rules say so, otherwise a new execution's. */
  private async decide(command: DeviceCommand): Promise<ExecutionOutcome> {
    const stored = await this.store.get(command.id);
    if (stored && (stored.status === "SUCCEEDED" || command.attempt <= stored.attempt)) return stored;
    const outcome = this.isExpired(command)
      ? { status: "FAILED" as const, attempt: command.attempt, error: { code: "EXPIRED", message: `expired at ${command.expiresAt}` } }
      : await this.execute(command);
    await this.store.set(command.id, outcome);
    return outcome;
  }

  private isExpired(command: DeviceCommand): boolean {
    return command.expiresAt !== null && Date.parse(command.expiresAt) < this.clock.now().getTime();
  }

  private async execute(command: DeviceCommand): Promise<ExecutionOutcome> {
    this.executedCount++;
    rememberBounded(this.executions, command.id, (this.executions.get(command.id) ?? 0) + 1, DEFAULT_MEMORY_CAPACITY);
    try {
      const outcome = await this.options.handler(command);
      if ("error" in outcome) return { status: "FAILED", attempt: command.attempt, error: outcome.error };
      return { status: "SUCCEEDED", attempt: command.attempt, result: outcome.result ?? {} };
    } catch (err) {
      return { status: "FAILED", attempt: command.attempt, error: { code: "DEVICE_ERROR", message: err instanceof Error ? err.message : String(err) } };
    }
  }

  /** Published on whatever connection is current: a reply finished after a restart still goes out. */
  private reply(command: DeviceCommand, answer: DeviceReply): void {
    const reply: DeviceReply = command.traceparent ? { ...answer, traceparent: command.traceparent } : answer;
    const client = this.client;
    if (!client) {
      // Stopped: the outcome is stored, so a redelivery after the next start is answered from it.
      this.log.debug({ commandId: reply.id, status: reply.status }, "reply dropped: device stopped");
      return;
    }
    this.repliedCount++;
    client.publish(this.topics.replies, JSON.stringify(reply), { qos: 1 }, (err) => {
      if (err) this.log.warn({ err: err.message, commandId: reply.id, status: reply.status }, "reply not published");
    });
    this.emit("reply", reply);
  }
}

/** Validates the fields the device relies on; anything else is malformed and ignored. */
function parseCommand(payload: Buffer): DeviceCommand | undefined {
  let message: unknown;
  try {
    message = JSON.parse(payload.toString("utf8"));
  } catch {
    return undefined;
  }
  if (!isObject(message)) return undefined;
  const { id, type, payload: body, attempt, issuedAt, expiresAt, traceparent } = message;
  if (typeof id !== "string" || id === "" || typeof type !== "string") return undefined;
  if (typeof attempt !== "number" || !Number.isInteger(attempt) || attempt < 1) return undefined;
  if (typeof issuedAt !== "string") return undefined;
  if (body !== undefined && body !== null && !isObject(body)) return undefined;
  if (expiresAt !== undefined && expiresAt !== null && (typeof expiresAt !== "string" || Number.isNaN(Date.parse(expiresAt)))) return undefined;
  return { id, type, payload: body ?? {}, attempt, issuedAt, expiresAt: expiresAt ?? null, ...(typeof traceparent === "string" ? { traceparent } : {}) };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Insert as newest; past capacity the oldest entry (first in Map order) is forgotten. */
function rememberBounded<V>(map: Map<string, V>, key: string, value: V, capacity: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > capacity) map.delete(map.keys().next().value as string);
}
