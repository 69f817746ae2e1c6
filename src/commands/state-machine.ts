import type { CommandStatus } from "./command";

/**
 * Every way a command's status may change (CONTRACT §4), as data: the store turns `from` into the
 * filter of one compare-and-set update, so two replicas racing on a command cannot both win.
 */
export type CommandTransition =
  | "publishAcked"
  | "deviceDelivered"
  | "deviceSucceeded"
  | "deviceFailed"
  | "timeOut"
  | "expire"
  | "cancel"
  | "retry";

interface TransitionRule {
  from: readonly CommandStatus[];
  to: CommandStatus;
}

const FINAL_REPLY_FROM = ["QUEUED", "SENT", "DELIVERED", "TIMED_OUT"] as const;

export const TRANSITIONS: Readonly<Record<CommandTransition, TransitionRule>> = {
  publishAcked: { from: ["QUEUED"], to: "SENT" },
  // A device may answer before the broker's PUBACK reaches us, so replies are also taken from QUEUED
  // when that attempt was already handed to the broker (the store checks the claim).
  deviceDelivered: { from: ["QUEUED", "SENT"], to: "DELIVERED" },
  deviceSucceeded: { from: FINAL_REPLY_FROM, to: "SUCCEEDED" },
  deviceFailed: { from: FINAL_REPLY_FROM, to: "FAILED" },
  timeOut: { from: ["SENT", "DELIVERED"], to: "TIMED_OUT" },
  expire: { from: ["QUEUED"], to: "EXPIRED" },
  cancel: { from: ["QUEUED"], to: "CANCELED" },
  retry: { from: ["FAILED", "TIMED_OUT", "EXPIRED"], to: "QUEUED" },
};

/** Statuses from which an operator may escalate; escalation does not change the status. */
export const ESCALATABLE: readonly CommandStatus[] = ["FAILED", "TIMED_OUT", "EXPIRED"];

/** Statuses in which nothing more is expected from the device. */
export const FINAL_STATUSES: readonly CommandStatus[] = ["SUCCEEDED", "FAILED", "EXPIRED", "CANCELED"];

export function canTransition(from: CommandStatus, transition: CommandTransition): boolean {
  return TRANSITIONS[transition].from.includes(from);
}

export function targetOf(transition: CommandTransition): CommandStatus {
  return TRANSITIONS[transition].to;
}

/** Reply statuses a device may send and the transition each one drives. */
export const REPLY_TRANSITIONS = {
  DELIVERED: "deviceDelivered",
  SUCCEEDED: "deviceSucceeded",
  FAILED: "deviceFailed",
} as const satisfies Record<string, CommandTransition>;
