/**
 * Crash points for the fault-injection tests: with GATEWAY_FAULT_POINT=<name> the process kills
 * itself with SIGKILL the first time it reaches that point, as a power cut would. Unset in production,
 * where each call is a string comparison.
 */
export type FaultPoint =
  | "after-store" // a command is stored QUEUED, nothing published yet
  | "after-claim" // the dispatcher took the command, not yet published
  | "after-publish" // the broker acknowledged the command, SENT not yet stored
  | "after-reply" // a device reply arrived, not yet applied
  | "after-timeout" // TIMED_OUT stored, its alert not yet written
  | "after-alert" // an alert stored, its webhook deliveries not yet
  | "after-delivery-stored"; // a webhook delivery stored, not yet attempted

const armed = process.env.GATEWAY_FAULT_POINT;

export function faultPoint(name: FaultPoint): void {
  if (armed === name) process.kill(process.pid, "SIGKILL");
}
