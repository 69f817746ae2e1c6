import { createHash, randomUUID } from "node:crypto";
import stringify from "safe-stable-stringify";
import { abilityOf, accessibleFilter, allows, type Action } from "../authz/ability";
import { sourceOf, type Principal } from "../authz/principal";
import type { CommandCatalog } from "../catalog/catalog";
import type { Clock } from "../clock";
import { decodeCursor, encodeCursor, pageSize, toPage, type Page } from "../common/pagination";
import { faultPoint } from "../common/fault-points";
import { badInput, conflict, forbidden, notFound, rateLimited } from "../errors";
import { DEVICE_ID_PATTERN } from "../mqtt/topics";
import { annotate, inSpan, inTrace, recordEvent, traceparentOf, type TraceContext } from "../observability/tracing";
import type { CommandQuery, CommandRepository } from "../store/command-repository";
import type { DeviceDirectory } from "../devices/device-directory";
import type { ActiveCommands } from "./active-commands";
import { allowedActions, type ActionSubject, type CommandAction } from "./allowed-actions";
import { isDue, type Command, type DispatchClaim } from "./command";
import type { CommandLifecycle } from "./lifecycle";
import type { Superseding } from "./superseding";
import { ESCALATABLE } from "./state-machine";

export interface SendCommandRequest {
  deviceId: string;
  type: string;
  payload?: unknown;
  timeoutSeconds?: number | null;
  /** undefined: the type's default; null: never expires. */
  expiresInSeconds?: number | null;
  idempotencyKey?: string | null;
  /** Not sent before this time; the expiry counts from it. Absent, null or past: sent at once. */
  notBefore?: Date | null;
  /** Set when the command is a child of a fleet command. */
  fleetCommandId?: string;
}

export interface CommandListRequest extends CommandQuery {
  first?: number | null;
  after?: string | null;
}

/** Notified after a command is stored, so the device's queue gets worked on. */
export interface DispatchTrigger {
  kick(deviceId: string): void;
  /** A claim to store a new command with when it can be sent at once (no claim write later), if any. */
  claimForNew(deviceId: string): DispatchClaim | undefined;
}

/** What a payload is sent to, for the payload limits that apply to the caller (CONTRACT §6.2). */
export interface PayloadTarget {
  tenant: string;
  site: string;
  type: string;
}

/** Checks a valid payload against the caller's payload limits; FORBIDDEN with a JSON pointer when it breaks one. */
export interface PayloadCheck {
  check(principal: Principal, target: PayloadTarget, payload: Record<string, unknown>): Promise<void>;
}

export interface CommandLimits {
  /** QUEUED commands a device may have; one more is RATE_LIMITED (a full queue, not a state conflict). */
  maxQueuedPerDevice: number;
}

export const DEFAULT_COMMAND_LIMITS: CommandLimits = { maxQueuedPerDevice: 1000 };
/** What a sender of a refused command is told to wait: a queue drains as fast as its device comes online. */
const QUEUE_FULL_RETRY_SECONDS = 60;

export const MAX_TIMEOUT_SECONDS = 86_400;
export const MAX_EXPIRES_IN_SECONDS = 30 * 86_400;
/** How far ahead a command may be scheduled: what is planned further ahead belongs in the caller's calendar. */
export const MAX_SCHEDULE_AHEAD_SECONDS = 30 * 86_400;
const MAX_IDEMPOTENCY_KEY_LENGTH = 128;
const MAX_NOTE_LENGTH = 1000;

/**
 * The one path by which commands enter the gateway, whatever their source (operators, partner
 * systems, automation rules): authorisation, validation, idempotency and persistence live here.
 */
export class CommandService {
  constructor(
    private readonly commands: CommandRepository,
    private readonly devices: DeviceDirectory,
    private readonly active: ActiveCommands,
    private readonly catalog: CommandCatalog,
    private readonly payloadLimits: PayloadCheck,
    private readonly lifecycle: CommandLifecycle,
    private readonly dispatch: DispatchTrigger,
    private readonly superseding: Superseding,
    private readonly clock: Clock,
    private readonly limits: CommandLimits = DEFAULT_COMMAND_LIMITS,
  ) {}

  /**
   * In a span of the caller's trace (`parent`, else the active context); the command stores that
   * span's traceparent, and its later work joins it.
   */
  send(principal: Principal, request: SendCommandRequest, parent?: TraceContext): Promise<Command> {
    const attributes = { "command.device_id": request.deviceId, "command.type": request.type, "command.source": sourceOf(principal) };
    return inSpan("command.send", { parent, attributes }, (trace) => this.accept(principal, request, trace));
  }

  private async accept(principal: Principal, request: SendCommandRequest, trace: TraceContext): Promise<Command> {
    validateRequest(request, this.clock.now());
    const found = await this.devices.find(request.deviceId);
    const device = found?.tenant === principal.tenant ? found : null;
    // Another tenant's device is indistinguishable from a missing one: no existence leak.
    if (!device) throw notFound("Device", request.deviceId);
    const fields = { tenant: device.tenant, site: device.site, deviceId: device.id, type: request.type, model: device.model };
    // The CASL check and validation are events of command.send (a refusal is its error): steps without
    // I/O of their own cost more as spans than they take, and an event's time shows how long each took.
    if (!allows(abilityOf(principal), "send", "Command", fields)) {
      throw forbidden(`Not allowed to send ${JSON.stringify(request.type)} to device ${JSON.stringify(device.id)}`);
    }
    recordEvent(trace, "command.authorize");
    const definition = this.catalog.requireFor(request.type, device.model);
    const payload = this.catalog.validatePayload(request.type, request.payload);
    await this.payloadLimits.check(principal, fields, payload);
    recordEvent(trace, "command.validate");

    const now = this.clock.now();
    const timeoutSeconds = request.timeoutSeconds ?? definition.defaultTimeoutSeconds;
    const expiresIn = request.expiresInSeconds === undefined ? definition.defaultExpiresInSeconds : request.expiresInSeconds;
    const key = request.idempotencyKey ?? undefined;
    const inputHash = key === undefined ? undefined : hashInput(request, payload);
    const notBefore = request.notBefore ?? undefined;
    // Counted from when it may first be sent: a scheduled command does not expire while it waits for its time.
    const expiryFrom = notBefore && notBefore > now ? notBefore : now;
    const command: Command = {
      id: key === undefined ? randomUUID() : idForKey(principal, key),
      v: 0,
      tenant: device.tenant,
      site: device.site,
      deviceId: device.id,
      type: request.type,
      payload,
      status: "QUEUED",
      source: sourceOf(principal),
      issuedBy: principal.id,
      idempotencyKey: key,
      inputHash,
      attempt: 1,
      timeoutSeconds,
      notBefore,
      expiresAt: expiresIn === null ? undefined : new Date(expiryFrom.getTime() + expiresIn * 1000),
      expiresInSeconds: expiresIn ?? undefined,
      createdAt: now,
      updatedAt: now,
      history: [{ status: "QUEUED", at: now, actor: principal.id }],
      fleetCommandId: request.fleetCommandId,
      traceparent: traceparentOf(trace),
    };
    annotate(trace, { "command.id": command.id });

    // A soft cap: concurrent sends may pass it together by a few. A resend of a stored command is still answered.
    if (this.active.queued(device.id).length >= this.limits.maxQueuedPerDevice) {
      const resent = key === undefined ? null : await this.commands.findById(command.id);
      if (!resent) {
        throw rateLimited(`Device ${JSON.stringify(device.id)} already has ${this.limits.maxQueuedPerDevice} queued commands`, QUEUE_FULL_RETRY_SECONDS, {
          field: "deviceId",
        });
      }
      return sameInputOrConflict(resent, inputHash);
    }
    // A scheduled command is claimed when its time comes.
    const claim = isDue(command, now) ? this.dispatch.claimForNew(device.id) : undefined;
    if (claim) command.claim = claim;
    if (!(await this.commands.insert(command))) {
      // The id is derived from (caller, key): an existing one is the same request sent before.
      const existing = await this.commands.findById(command.id);
      if (!existing) throw conflict("The idempotency key is being used by a concurrent request; try again", { field: "idempotencyKey" });
      return sameInputOrConflict(existing, inputHash);
    }
    faultPoint("after-store");
    // Announced in the request's span: the QUEUED event is one of its moments.
    inTrace(trace, () => this.lifecycle.created(command));
    // Before the kick, so that what this command supersedes is not sent first. Not a reason to refuse a
    // command already stored: what is left QUEUED is superseded before the dispatcher sends anything.
    if (definition.supersedes) await this.superseding.supersedeDue(device.id).catch(() => undefined);
    this.dispatch.kick(device.id);
    return command;
  }

  /** null when it does not exist or the caller may not read it: the two are not told apart. */
  async get(principal: Principal, id: string): Promise<Command | null> {
    const scope = this.scopeFor(principal, "read");
    return scope ? this.commands.findById(id, scope) : null;
  }

  async list(principal: Principal, request: CommandListRequest): Promise<Page<Command>> {
    const size = pageSize(request.first);
    const after = request.after ? decodeCursor<[number, string]>(request.after, ["number", "string"]) : undefined;
    if (request.since && request.until && request.since > request.until) throw badInput("since must not be after until", { field: "since" });
    const scope = this.scopeFor(principal, "read");
    const cursorOf = (c: Command) => encodeCursor([c.createdAt.getTime(), c.id]);
    if (!scope) return toPage([], size, cursorOf);
    const rows = await this.commands.list(scope, request, size + 1, after && { createdAt: new Date(after[0]), id: after[1] });
    return toPage(rows, size, cursorOf);
  }

  /** FAILED, TIMED_OUT or EXPIRED → QUEUED with the same id and attempt + 1, sent again like a new command. */
  async retry(principal: Principal, id: string): Promise<Command> {
    const command = await this.requireAllowed(principal, id, "retry");
    const updated = await this.lifecycle.apply(
      id,
      "retry",
      (current) => {
        // The attempt that was read: of two concurrent retries only one applies.
        if (current.attempt !== command.attempt) return null;
        const now = this.clock.now();
        return {
          set: { attempt: current.attempt + 1, ...(current.expiresInSeconds === undefined ? {} : { expiresAt: new Date(now.getTime() + current.expiresInSeconds * 1000) }) },
          unset: ["claim", "sentAt", "deliveredAt", "completedAt", "deadline", "result", "error"],
          event: { at: now, actor: principal.id, detail: `retry: attempt ${current.attempt + 1}` },
        };
      },
      command,
    );
    if (!updated) throw await this.refusal(id, "retry", "FAILED, TIMED_OUT or EXPIRED");
    this.dispatch.kick(updated.deviceId);
    return updated;
  }

  /** Raises the escalation level and an ESCALATED alert; the status stays. */
  async escalate(principal: Principal, id: string, note: string | null | undefined): Promise<Command> {
    if (note != null && note.length > MAX_NOTE_LENGTH) throw badInput(`note must be at most ${MAX_NOTE_LENGTH} characters`, { field: "note" });
    const command = await this.requireAllowed(principal, id, "escalate");
    if (!ESCALATABLE.includes(command.status)) throw conflict(`Command is ${command.status}; escalate needs FAILED, TIMED_OUT or EXPIRED`);
    const outcome = await this.lifecycle.submit(
      id,
      (current) => {
        // Same status and level as read: concurrent escalations do not skip or repeat a level.
        if (current.status !== command.status || current.escalation?.level !== command.escalation?.level) return { refused: "changed" };
        const now = this.clock.now();
        const level = (current.escalation?.level ?? 0) + 1;
        return {
          set: { escalation: { level, at: now, by: principal.id, note: note ?? undefined }, pendingAlert: { kind: "ESCALATED", level, attempt: current.attempt } },
          steps: [{ change: "escalated", event: { status: current.status, at: now, actor: principal.id, detail: `escalated to level ${level}${note ? `: ${note}` : ""}` } }],
        };
      },
      command,
    );
    if (outcome.refused !== undefined) throw conflict("The command changed while escalating; try again");
    return outcome.command;
  }

  /** QUEUED → CANCELED, only while no dispatcher has taken it (then it may already be on its way). */
  async cancel(principal: Principal, id: string): Promise<Command> {
    const command = await this.requireAllowed(principal, id, "cancel");
    const updated = await this.lifecycle.apply(id, "cancel", (current) => (current.claim ? null : { event: { at: this.clock.now(), actor: principal.id } }), command);
    if (!updated) throw await this.refusal(id, "cancel", "QUEUED and not yet being sent");
    return updated;
  }

  /** What the principal may do to this command now: its state × the policy. */
  allowedActions(principal: Principal, command: ActionSubject): CommandAction[] {
    return allowedActions(abilityOf(principal), command);
  }

  /** The command if the principal may read it and take this action on it. */
  private async requireAllowed(principal: Principal, id: string, action: Action): Promise<Command> {
    const command = await this.get(principal, id);
    if (!command) throw notFound("Command", id);
    if (!allows(abilityOf(principal), action, "Command", command)) throw forbidden(`Not allowed to ${action} this command`);
    return command;
  }

  private async refusal(id: string, action: string, needs: string) {
    const current = await this.commands.findById(id);
    return conflict(`Command is ${current?.status ?? "gone"}; ${action} needs ${needs}`, { status: current?.status });
  }

  private scopeFor(principal: Principal, action: Action) {
    return accessibleFilter(abilityOf(principal), action, "Command");
  }
}

function validateRequest(request: SendCommandRequest, now: Date): void {
  if (!DEVICE_ID_PATTERN.test(request.deviceId)) throw badInput("deviceId is not a valid device id", { field: "deviceId" });
  if (!request.type) throw badInput("type must not be empty", { field: "type" });
  const { timeoutSeconds, expiresInSeconds, idempotencyKey } = request;
  if (timeoutSeconds != null && !(Number.isInteger(timeoutSeconds) && timeoutSeconds >= 1 && timeoutSeconds <= MAX_TIMEOUT_SECONDS)) {
    throw badInput(`timeoutSeconds must be between 1 and ${MAX_TIMEOUT_SECONDS}`, { field: "timeoutSeconds" });
  }
  if (expiresInSeconds != null && !(Number.isInteger(expiresInSeconds) && expiresInSeconds >= 1 && expiresInSeconds <= MAX_EXPIRES_IN_SECONDS)) {
    throw badInput(`expiresInSeconds must be between 1 and ${MAX_EXPIRES_IN_SECONDS}, or null`, { field: "expiresInSeconds" });
  }
  const { notBefore } = request;
  if (notBefore != null && !(notBefore instanceof Date && Number.isFinite(notBefore.getTime()))) throw badInput("notBefore must be a date-time", { field: "notBefore" });
  if (notBefore != null && notBefore.getTime() > now.getTime() + MAX_SCHEDULE_AHEAD_SECONDS * 1000) {
    throw badInput(`notBefore must be at most ${MAX_SCHEDULE_AHEAD_SECONDS / 86_400} days ahead`, { field: "notBefore" });
  }
  if (idempotencyKey != null && (idempotencyKey.length < 1 || idempotencyKey.length > MAX_IDEMPOTENCY_KEY_LENGTH)) {
    throw badInput(`idempotencyKey must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`, { field: "idempotencyKey" });
  }
}

/** A resend with the same key: the stored command if the input is the same, CONFLICT otherwise. */
function sameInputOrConflict(existing: Command, inputHash: string | undefined): Command {
  if (existing.inputHash !== inputHash) throw conflict("The idempotency key was already used with a different input", { field: "idempotencyKey" });
  return existing;
}

/** The same caller and key always name the same command, so the unique _id makes a resend a no-op. */
export function idForKey(principal: Principal, key: string): string {
  const hex = createHash("sha256").update(`${principal.tenant}\u0000${principal.id}\u0000${key}`).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function hashInput(request: SendCommandRequest, payload: Record<string, unknown>): string {
  const input = {
    deviceId: request.deviceId,
    type: request.type,
    payload,
    timeoutSeconds: request.timeoutSeconds ?? null,
    expiresInSeconds: request.expiresInSeconds === undefined ? "default" : request.expiresInSeconds,
    // Only when given, so that the hashes of commands stored before scheduling existed stay the same.
    ...(request.notBefore ? { notBefore: request.notBefore.toISOString() } : {}),
  };
  return createHash("sha256").update(stringify(input) ?? "").digest("hex");
}

