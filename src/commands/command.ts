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
  /** Written with the transition that calls for an alert and removed once the alert exists, so a crash in between is repaired. */
  pendingAlert?: PendingAlert;
  /** Set on the children of a fleet command (CONTRACT §6.3). */
  fleetCommandId?: string;
}

export interface PendingAlert {
  kind: AlertKind;
  level: number;
  /** The attempt it is about (a retry may follow before the alert is written). */
  attempt: number;
}

/** What every reader of a command may filter on: the attributes CASL conditions are written over. */
export type CommandSubjectFields = Pick<Command, "tenant" | "site" | "deviceId" | "type" | "issuedBy">;
