import type { Principal } from "../authz/principal";
import type { CommandStatus } from "../commands/command";
import { FINAL_STATUSES } from "../commands/state-machine";

/** A fleet command: one command type and payload sent to many devices, paced (CONTRACT §6.3). */
export const FLEET_STATUSES = ["SCHEDULED", "RUNNING", "PAUSED", "COMPLETED", "ABORTED", "CANCELED"] as const;
export type FleetCommandStatus = (typeof FLEET_STATUSES)[number];
export const FINISHED_FLEET_STATUSES: readonly FleetCommandStatus[] = ["COMPLETED", "ABORTED", "CANCELED"];
export const isFinished = (status: FleetCommandStatus) => FINISHED_FLEET_STATUSES.includes(status);

/** A child that will not change by itself any more (TIMED_OUT counts: the abort rule is about it). */
export const SETTLED_CHILD_STATUSES: readonly CommandStatus[] = [...FINAL_STATUSES, "TIMED_OUT"];
export const FAILING_CHILD_STATUSES: readonly CommandStatus[] = ["FAILED", "TIMED_OUT", "EXPIRED"];

/** All given fields must match. */
export interface FleetTarget {
  site?: string;
  model?: string;
  deviceIds?: string[];
}

export interface AbortRule {
  failurePercent: number;
  minCompleted: number;
}

/** A matched device that is never sent the command, and why. */
export interface SkippedDevice {
  deviceId: string;
  reason: string;
}

export interface FleetCommand {
  id: string;
  /** Version: every stored change is a compare-and-set on it. */
  v: number;
  tenant: string;
  name: string;
  type: string;
  payload: Record<string, unknown>;
  target: FleetTarget;
  status: FleetCommandStatus;
  createdBy: string;
  /** The creator as it was at creation: the children are sent as, and authorised for, this principal. */
  creator: Principal;
  createdAt: Date;
  updatedAt: Date;
  /** W3C trace context of the request that created it (tracing on): each child's trace links to it. */
  traceparent?: string;
  startAt?: Date;
  startedAt?: Date;
  finishedAt?: Date;
  timeoutSeconds?: number;
  /** undefined: the type's default; null: never expires. */
  expiresInSeconds?: number | null;
  maxPerMinute: number;
  abort?: AbortRule;
  idempotencyKey?: string;
  inputHash?: string;
  /** Devices matched when it started. */
  targeted: number;
  /** Matched but never sent: policy, model, payload limits (at start), or refused by the command path later. */
  skipped: number;
  /** The devices to send to, in rollout order, stored in `targetChunks` documents apart from this one. */
  sendable: number;
  targetChunks: number;
  /** Children by status, as the driving replica last stored them. */
  counts: Partial<Record<CommandStatus, number>>;
  /** Position in the sendable devices up to which children were started (stored now and then by the driver). */
  next: number;
  /** Devices the command path refused during the rollout (at start the refusals are kept in the target chunks). */
  refused: SkippedDevice[];
  abortReason?: string;
}

/** A part of a fleet command's resolved target: up to TARGET_CHUNK_SIZE matched devices. */
export interface TargetChunk {
  deviceIds: string[];
  skipped: SkippedDevice[];
}

export const TARGET_CHUNK_SIZE = 1000;

/** The child's idempotency key: a second start of the same child (after a takeover) finds the first. */
export const childKey = (fleetCommandId: string, deviceId: string) => `fleet:${fleetCommandId}:${deviceId}`;

/** The one alert an ABORTED fleet command raises (on its first failing child). */
export const fleetAbortAlertId = (fleetCommandId: string) => `fleet:${fleetCommandId}:ABORTED`;
