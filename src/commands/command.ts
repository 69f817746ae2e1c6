import type { AlertKind } from "../alerts/alert";

/** The command as the gateway stores and reasons about it (CONTRACT §3, §4). */
export const COMMAND_STATUSES = ["QUEUED", "SENT", "DELIVERED", "SUCCEEDED", "FAILED", "TIMED_OUT", "EXPIRED", "CANCELED"] as const;
export type CommandStatus = (typeof COMMAND_STATUSES)[number];

export const COMMAND_SOURCES = ["OPERATOR", "AUTOMATION", "API"] as const;
export type CommandSource = (typeof COMMAND_SOURCES)[number];

export interface CommandEvent {
  status: CommandStatus;
  at: Date;
  /** Who caused it: a principal id, `device:<id>` or `gateway`. */
  actor: string;
  detail?: string;
}

export interface CommandErrorInfo {
  code: string;
  message?: string;
}

export interface Escalation {
  level: number;
  at: Date;
  by: string;
  note?: string;
}

/**
 * Set when a dispatcher takes the current attempt for publishing (and removed by a retry), so it also
 * means "this attempt may have reached the device". `until` lets another replica take over after a crash.
 */
export interface DispatchClaim {
  owner: string;
  until: Date;
}

export interface Command {
  id: string;
  /** Version: every stored change sets it to the value read + 1 (compare-and-set, STORE-DESIGN.md). */
  v: number;
  tenant: string;
  site: string;
  deviceId: string;
  type: string;
  payload: Record<string, unknown>;
  status: CommandStatus;
  source: CommandSource;
  issuedBy: string;
  idempotencyKey?: string;
  /** Hash of the input that an idempotency key was first used with. */
  inputHash?: string;
  attempt: number;
  timeoutSeconds: number;
  deadline?: Date;
  /** Not handed to the broker before this time (a scheduled command); its expiry counts from it. */
  notBefore?: Date;
  expiresAt?: Date;
  /** The expiry window asked for, so a retry gets a fresh one; absent: never expires. */
  expiresInSeconds?: number;
  createdAt: Date;
  updatedAt: Date;
  sentAt?: Date;
  deliveredAt?: Date;
  completedAt?: Date;
  result?: Record<string, unknown>;
  error?: CommandErrorInfo;
  escalation?: Escalation;
  history: CommandEvent[];
  claim?: DispatchClaim;
  /** The newer command of a superseding type that replaced this one while it was QUEUED (it is CANCELED). */
  supersededBy?: string;
  /** Written with the transition that calls for an alert and removed once the alert exists, so a crash in between is repaired. */
  pendingAlert?: PendingAlert;
  /** Set on the children of a fleet command (CONTRACT §6.3). */
  fleetCommandId?: string;
  /** W3C trace context of the request that created it (tracing on): later work on it joins that trace. */
  traceparent?: string;
}

export interface PendingAlert {
  kind: AlertKind;
  level: number;
  /** The attempt it is about (a retry may follow before the alert is written). */
  attempt: number;
}

/**
 * When the command is due to be sent: its `notBefore`, or its creation when it has none (or an earlier
 * one). Commands are sent, and a superseding type replaces, in this order.
 */
export function dueAt(command: Pick<Command, "createdAt" | "notBefore">): Date {
  return command.notBefore && command.notBefore > command.createdAt ? command.notBefore : command.createdAt;
}

/** Order of falling due (`dueAt`), then of creation. */
export function byDue(a: Command, b: Command): number {
  return dueAt(a).getTime() - dueAt(b).getTime() || a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Whether the command may be handed to the broker at `now` (its `notBefore` has come). */
export function isDue(command: Pick<Command, "notBefore">, now: Date): boolean {
  return !command.notBefore || command.notBefore <= now;
}

/** What every reader of a command may filter on: the attributes CASL conditions are written over. */
export type CommandSubjectFields = Pick<Command, "tenant" | "site" | "deviceId" | "type" | "issuedBy">;
