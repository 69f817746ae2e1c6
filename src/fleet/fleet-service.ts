import { createHash, randomUUID } from "node:crypto";
import stringify from "safe-stable-stringify";
import { abilityOf, accessibleFilter, allows } from "../authz/ability";
import type { Principal } from "../authz/principal";
import type { CommandCatalog } from "../catalog/catalog";
import type { Clock } from "../clock";
import { idForKey, MAX_EXPIRES_IN_SECONDS, MAX_TIMEOUT_SECONDS, type CommandService } from "../commands/command-service";
import { decodeCursor, encodeCursor, pageSize, toPage, type Page } from "../common/pagination";
import { badInput, conflict, forbidden, notFound } from "../errors";
import { DEVICE_ID_PATTERN } from "../mqtt/topics";
import type { FleetCommandRepository } from "../store/fleet-command-repository";
import type { ActiveCommands } from "../commands/active-commands";
import { cancelQueuedChildren } from "./fleet-children";
import { childKey, isFinished, type AbortRule, type FleetCommand, type FleetCommandStatus, type FleetTarget, type SkippedDevice } from "./fleet-command";
import type { FleetTargets } from "./fleet-targets";
import { traceparentOf, type TraceContext } from "../observability/tracing";

export interface CreateFleetCommandRequest {
  name: string;
  target: FleetTarget;
  type: string;
  payload?: unknown;
  timeoutSeconds?: number | null;
  expiresInSeconds?: number | null;
  startAt?: Date | null;
  rollout?: { maxPerMinute: number } | null;
  abort?: AbortRule | null;
  idempotencyKey?: string | null;
}

/** What `previewFleetTargets` asks: the parts of a fleet command that decide its devices. */
export interface FleetTargetsPreviewRequest {
  target: FleetTarget;
  type: string;
  payload?: unknown;
}

/** A dry run of the target resolution: the counts, and up to PREVIEW_LIST_LIMIT devices of each kind. */
export interface FleetTargetsPreview {
  targeted: number;
  sendable: number;
  skipped: number;
  deviceIds: string[];
  skippedDevices: SkippedDevice[];
}

export const PREVIEW_LIST_LIMIT = 1000;

/** What a caller can do to a fleet command (beyond the contract: the console's buttons), and the statuses each is taken from. */
export const FLEET_ACTIONS = ["PAUSE", "RESUME", "CANCEL"] as const;
export type FleetAction = (typeof FLEET_ACTIONS)[number];
const FLEET_ACTION_FROM: Readonly<Record<FleetAction, readonly FleetCommandStatus[]>> = {
  PAUSE: ["RUNNING"],
  RESUME: ["PAUSED"],
  CANCEL: ["SCHEDULED", "RUNNING", "PAUSED"],
};

/** Without a rollout: as fast as the driver may start them. */
export const DEFAULT_MAX_PER_MINUTE = 6000;
export const MAX_PER_MINUTE = 100_000;
const MAX_NAME_LENGTH = 200;
const MAX_TARGET_IDS = 10_000;
const MAX_IDEMPOTENCY_KEY_LENGTH = 128;
const MAX_ROUNDS = 5;

/** The fleet commands this replica drives (FleetDriver). */
export interface LocalRollouts {
  current(id: string): FleetCommand | undefined;
  move(id: string, decide: (current: FleetCommand) => Partial<FleetCommand> | null): Promise<FleetCommand | null> | undefined;
}

/** Told of every stored change: the driver of this replica and, over the bus, every other. */
export type FleetCommandListener = (fleet: FleetCommand) => void;

/**
 * Creates fleet commands and changes their status on behalf of callers (CONTRACT §6.3); the rollout
 * itself is the FleetDriver's. A fleet command that starts at once has its target resolved here, so
 * the answer already says how many devices are targeted and skipped.
 */
export class FleetCommandService {
  constructor(
    private readonly fleets: FleetCommandRepository,
    private readonly targets: FleetTargets,
    private readonly catalog: CommandCatalog,
    private readonly commands: CommandService,
    private readonly active: ActiveCommands,
    private readonly clock: Clock,
    private readonly onChange: FleetCommandListener,
    /** This replica's rollouts: their fresher copy, and their lane for status changes. */
    private readonly local: LocalRollouts = { current: () => undefined, move: () => undefined },
  ) {}

  /** `trace`: the request's span; each child's trace links to it. */
  async create(principal: Principal, request: CreateFleetCommandRequest, trace?: TraceContext): Promise<FleetCommand> {
    if (!allows(abilityOf(principal), "create", "FleetCommand", { tenant: principal.tenant })) throw forbidden("Not allowed to create fleet commands");
    validate(request);
    if (!this.catalog.find(request.type)) throw badInput(`Unknown command type ${JSON.stringify(request.type)}`, { field: "type" });
    const payload = this.catalog.validatePayload(request.type, request.payload);
    const key = request.idempotencyKey ?? undefined;
    const inputHash = key === undefined ? undefined : hashInput(request, payload);
    const id = key === undefined ? randomUUID() : idForKey(principal, `fleet\u0000${key}`);
    if (key !== undefined) {
      const existing = await this.fleets.findById(id);
      if (existing) return sameInputOrConflict(existing, inputHash);
    }
    const now = this.clock.now();
    const scheduled = request.startAt != null && request.startAt > now;
    const { expiresAt: _expiresAt, ...creator } = principal as Principal & { expiresAt?: number };
    const fleet: FleetCommand = {
      id,
      v: 0,
      tenant: principal.tenant,
      name: request.name,
      type: request.type,
      payload,
      target: cleanTarget(request.target),
      status: scheduled ? "SCHEDULED" : "RUNNING",
      createdBy: principal.id,
      creator: creator as Principal,
      createdAt: now,
      updatedAt: now,
      traceparent: traceparentOf(trace),
      startAt: request.startAt ?? undefined,
      startedAt: scheduled ? undefined : now,
      timeoutSeconds: request.timeoutSeconds ?? undefined,
      expiresInSeconds: request.expiresInSeconds,
      maxPerMinute: request.rollout?.maxPerMinute ?? DEFAULT_MAX_PER_MINUTE,
      abort: request.abort ?? undefined,
      idempotencyKey: key,
      inputHash,
      targeted: 0,
      skipped: 0,
      sendable: 0,
      targetChunks: 0,
      counts: {},
      next: 0,
      refused: [],
    };
    if (!scheduled) {
      const resolved = await this.targets.resolve(principal, fleet);
      await this.fleets.saveTargets(id, resolved.chunks);
      Object.assign(fleet, { targeted: resolved.targeted, skipped: resolved.skipped, sendable: resolved.sendable, targetChunks: resolved.chunks.length });
    }
    if (!(await this.fleets.insert(fleet))) {
      const existing = await this.fleets.findById(id);
      if (!existing) throw conflict("The idempotency key is being used by a concurrent request; try again", { field: "idempotencyKey" });
      return sameInputOrConflict(existing, inputHash);
    }
    this.onChange(fleet);
    return fleet;
  }

  /**
   * What `create` would target now, with the same checks and the same rules (FleetTargets), storing nothing. The
   * devices are resolved again when the fleet command starts, so one registered in between is in it.
   */
  async preview(principal: Principal, request: FleetTargetsPreviewRequest): Promise<FleetTargetsPreview> {
    if (!allows(abilityOf(principal), "create", "FleetCommand", { tenant: principal.tenant })) throw forbidden("Not allowed to create fleet commands");
    validateTarget(request.target);
    if (!this.catalog.find(request.type)) throw badInput(`Unknown command type ${JSON.stringify(request.type)}`, { field: "type" });
    const payload = this.catalog.validatePayload(request.type, request.payload);
    const resolved = await this.targets.resolve(principal, { tenant: principal.tenant, target: cleanTarget(request.target), type: request.type, payload });
    return {
      targeted: resolved.targeted,
      sendable: resolved.sendable,
      skipped: resolved.skipped,
      deviceIds: resolved.chunks.flatMap((c) => c.deviceIds).slice(0, PREVIEW_LIST_LIMIT),
      skippedDevices: resolved.chunks.flatMap((c) => c.skipped).slice(0, PREVIEW_LIST_LIMIT),
    };
  }

  /** null when it does not exist or the caller may not read it. */
  async get(principal: Principal, id: string): Promise<FleetCommand | null> {
    const scope = accessibleFilter(abilityOf(principal), "read", "FleetCommand");
    if (!scope) return null;
    const stored = await this.fleets.findById(id, scope);
    const driven = stored && this.local.current(id);
    return driven && driven.v >= stored.v ? driven : stored;
  }

  async list(principal: Principal, request: { first?: number | null; after?: string | null }): Promise<Page<FleetCommand>> {
    const size = pageSize(request.first);
    const after = request.after ? decodeCursor<[number, string]>(request.after, ["number", "string"]) : undefined;
    const scope = accessibleFilter(abilityOf(principal), "read", "FleetCommand");
    const cursorOf = (f: FleetCommand) => encodeCursor([f.createdAt.getTime(), f.id]);
    if (!scope) return toPage([], size, cursorOf);
    const rows = await this.fleets.list(scope, size + 1, after && { createdAt: new Date(after[0]), id: after[1] });
    return toPage(rows, size, cursorOf);
  }

  /** Every matched device not sent the command, with the reason: at start, then refused during the rollout. */
  async skippedDevices(fleet: FleetCommand): Promise<SkippedDevice[]> {
    const chunks = await this.fleets.targets(fleet.id, fleet.targetChunks);
    return [...chunks.flatMap((c) => c.skipped), ...fleet.refused];
  }

  /** The actions that would succeed now: the status allows them and the caller may update this fleet command. */
  allowedActions(principal: Principal, fleet: FleetCommand): FleetAction[] {
    if (!allows(abilityOf(principal), "update", "FleetCommand", fleet)) return [];
    return FLEET_ACTIONS.filter((action) => FLEET_ACTION_FROM[action].includes(fleet.status));
  }

  pause(principal: Principal, id: string): Promise<FleetCommand> {
    return this.move(principal, id, FLEET_ACTION_FROM.PAUSE, "PAUSED");
  }

  resume(principal: Principal, id: string): Promise<FleetCommand> {
    return this.move(principal, id, FLEET_ACTION_FROM.RESUME, "RUNNING");
  }

  /** Children not yet started never start; QUEUED ones are CANCELED (those not yet taken for sending). */
  async cancel(principal: Principal, id: string): Promise<FleetCommand> {
    const canceled = await this.move(principal, id, FLEET_ACTION_FROM.CANCEL, "CANCELED");
    // Also here, not only on the driver: the driver may be gone. Memory knows every active child.
    const chunks = await this.fleets.targets(id, canceled.targetChunks);
    const queued = chunks
      .flatMap((c) => c.deviceIds)
      .map((deviceId) => idForKey(canceled.creator, childKey(id, deviceId)))
      .filter((childId) => this.active.get(childId)?.status === "QUEUED");
    await cancelQueuedChildren(this.commands, canceled.creator, queued);
    return canceled;
  }

  /** The driver's copy only if it has seen this write (as `get`): an older one would answer the status before the move. */
  private fresher(stored: FleetCommand): FleetCommand {
    const driven = this.local.current(stored.id);
    return driven && driven.v >= stored.v ? driven : stored;
  }

  private async move(principal: Principal, id: string, from: readonly FleetCommandStatus[], to: FleetCommandStatus): Promise<FleetCommand> {
    let current = await this.get(principal, id);
    if (!current) throw notFound("FleetCommand", id);
    if (!allows(abilityOf(principal), "update", "FleetCommand", current)) throw forbidden("Not allowed to change this fleet command");
    const refused = (fleet: FleetCommand) => conflict(`Fleet command is ${fleet.status}; this needs ${from.join(", ")}`, { status: fleet.status });
    const change = () => ({ status: to, ...(isFinished(to) && { finishedAt: this.clock.now() }) });
    // Driven here: in the rollout's lane, so a progress write of this replica cannot overwrite the new status.
    const moving = this.local.move(id, (fleet) => (from.includes(fleet.status) ? change() : null));
    if (moving) {
      const stored = await moving;
      if (stored) {
        this.onChange(stored);
        return this.fresher(stored);
      }
      current = this.local.current(id) ?? (await this.fleets.findById(id));
      if (current && !from.includes(current.status)) throw refused(current);
      throw conflict("The fleet command changed meanwhile; try again");
    }
    for (let round = 0; round < MAX_ROUNDS && current; round++) {
      if (!from.includes(current.status)) throw refused(current);
      const stored = await this.fleets.write(current, change());
      if (stored) {
        this.onChange(stored);
        return this.fresher(stored);
      }
      current = await this.fleets.findById(id);
    }
    throw conflict("The fleet command changed meanwhile; try again");
  }
}

function validate(request: CreateFleetCommandRequest): void {
  if (!request.name.trim() || request.name.length > MAX_NAME_LENGTH) throw badInput(`name must be 1 to ${MAX_NAME_LENGTH} characters`, { field: "name" });
  if (!request.type) throw badInput("type must not be empty", { field: "type" });
  validateTarget(request.target);
  const { timeoutSeconds, expiresInSeconds, idempotencyKey, rollout, abort } = request;
  if (timeoutSeconds != null && !(Number.isInteger(timeoutSeconds) && timeoutSeconds >= 1 && timeoutSeconds <= MAX_TIMEOUT_SECONDS)) {
    throw badInput(`timeoutSeconds must be between 1 and ${MAX_TIMEOUT_SECONDS}`, { field: "timeoutSeconds" });
  }
  if (expiresInSeconds != null && !(Number.isInteger(expiresInSeconds) && expiresInSeconds >= 1 && expiresInSeconds <= MAX_EXPIRES_IN_SECONDS)) {
    throw badInput(`expiresInSeconds must be between 1 and ${MAX_EXPIRES_IN_SECONDS}, or null`, { field: "expiresInSeconds" });
  }
  if (rollout && !(Number.isInteger(rollout.maxPerMinute) && rollout.maxPerMinute >= 1 && rollout.maxPerMinute <= MAX_PER_MINUTE)) {
    throw badInput(`rollout.maxPerMinute must be between 1 and ${MAX_PER_MINUTE}`, { field: "rollout.maxPerMinute" });
  }
  if (abort && !(abort.failurePercent > 0 && abort.failurePercent <= 100)) throw badInput("abort.failurePercent must be above 0 and at most 100", { field: "abort.failurePercent" });
  if (abort && !(Number.isInteger(abort.minCompleted) && abort.minCompleted >= 1)) throw badInput("abort.minCompleted must be at least 1", { field: "abort.minCompleted" });
  if (idempotencyKey != null && (idempotencyKey.length < 1 || idempotencyKey.length > MAX_IDEMPOTENCY_KEY_LENGTH)) {
    throw badInput(`idempotencyKey must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`, { field: "idempotencyKey" });
  }
}

/** No field given: the whole tenant. */
function validateTarget({ deviceIds }: FleetTarget): void {
  if (deviceIds == null) return;
  if (deviceIds.length === 0 || deviceIds.length > MAX_TARGET_IDS) throw badInput(`target.deviceIds must hold 1 to ${MAX_TARGET_IDS} ids`, { field: "target.deviceIds" });
  const bad = deviceIds.findIndex((id) => !DEVICE_ID_PATTERN.test(id));
  if (bad >= 0) throw badInput(`target.deviceIds[${bad}] is not a valid device id`, { field: "target.deviceIds" });
}

/** Only the fields given: an absent one matches every device. */
function cleanTarget({ site, model, deviceIds }: FleetTarget): FleetTarget {
  return { ...(site != null && { site }), ...(model != null && { model }), ...(deviceIds != null && { deviceIds }) };
}

function sameInputOrConflict(existing: FleetCommand, inputHash: string | undefined): FleetCommand {
  if (existing.inputHash !== inputHash) throw conflict("The idempotency key was already used with a different input", { field: "idempotencyKey" });
  return existing;
}

function hashInput(request: CreateFleetCommandRequest, payload: Record<string, unknown>): string {
  const input = {
    name: request.name,
    target: cleanTarget(request.target),
    type: request.type,
    payload,
    timeoutSeconds: request.timeoutSeconds ?? null,
    expiresInSeconds: request.expiresInSeconds === undefined ? "default" : request.expiresInSeconds,
    startAt: request.startAt?.toISOString() ?? null,
    rollout: request.rollout ?? null,
    abort: request.abort ?? null,
  };
  return createHash("sha256").update(stringify(input) ?? "").digest("hex");
}
