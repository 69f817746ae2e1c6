import { isDeepStrictEqual } from "node:util";
import type { CommandTypeDefinition } from "../catalog/command-types";
import { byDue, type Command, type CommandStatus } from "../commands/command";

/** Commands not yet final: what they set is `desired` until they end (CONTRACT §6.2). */
export const ACTIVE_STATUSES: readonly CommandStatus[] = ["QUEUED", "SENT", "DELIVERED"];

/** Largest reported state kept per device, serialised; a device reports a handful of values, not a log. */
export const MAX_REPORTED_BYTES = 16 * 1024;
const MAX_STATE_KEY_LENGTH = 128;

export type StateObject = Record<string, unknown>;

/** What is derived from a device's active commands and its reported state. */
export interface DerivedDeviceState {
  desired: StateObject;
  inSync: boolean;
  pendingCommands: number;
}

/** What the device's active commands will set, the one that falls due last winning per key (the order they are sent in). */
export function desiredStateOf(active: readonly Command[], definitionOf: (type: string) => CommandTypeDefinition | undefined): StateObject {
  const desired: StateObject = {};
  for (const command of [...active].sort(byDue)) {
    for (const [key, source] of Object.entries(definitionOf(command.type)?.desiredState ?? {})) {
      const value = "value" in source ? source.value : command.payload[source.payloadField];
      if (value !== undefined) desired[key] = value;
    }
  }
  return desired;
}

export function deriveState(active: readonly Command[], reported: StateObject, definitionOf: (type: string) => CommandTypeDefinition | undefined): DerivedDeviceState {
  const desired = desiredStateOf(active, definitionOf);
  const inSync = Object.entries(desired).every(([key, value]) => isDeepStrictEqual(reported[key], value));
  return { desired, inSync, pendingCommands: active.length };
}

/** The state fields a SUCCEEDED result reports, as the type names them; absent ones are left out. */
export function reportedByResult(definition: CommandTypeDefinition, result: StateObject | undefined): StateObject {
  const reported: StateObject = {};
  for (const key of definition.reportedState ?? []) if (result?.[key] !== undefined) reported[key] = result[key];
  return reported;
}

/** A telemetry message's `state`, if it is an object of sensible keys; null otherwise. */
export function telemetryState(state: unknown): StateObject | null {
  if (typeof state !== "object" || state === null || Array.isArray(state)) return null;
  const keys = Object.keys(state);
  return keys.length > 0 && keys.every((key) => key.length > 0 && key.length <= MAX_STATE_KEY_LENGTH) ? (state as StateObject) : null;
}

/** What merging `patch` into `reported` changes: keys to set, keys to remove (a `null` value removes). */
export interface StateChange {
  set: StateObject;
  unset: string[];
  merged: StateObject;
}

/** null when the patch changes nothing, so an identical report costs no write. */
export function mergeReported(reported: StateObject, patch: StateObject): StateChange | null {
  const change: StateChange = { set: {}, unset: [], merged: { ...reported } };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      if (key in reported) {
        change.unset.push(key);
        delete change.merged[key];
      }
    } else if (!isDeepStrictEqual(reported[key], value)) {
      change.set[key] = value;
      change.merged[key] = value;
    }
  }
  return Object.keys(change.set).length || change.unset.length ? change : null;
}
