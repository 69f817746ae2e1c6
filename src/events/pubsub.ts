import { createPubSub } from "@graphql-yoga/subscription";
import type { Alert } from "../alerts/alert";
import type { Command } from "../commands/command";
import type { Device, DeviceRef } from "../devices/device";
import type { FleetCommand } from "../fleet/fleet-command";

/** Subscription topics; the names are internal, the payloads are what subscribers filter on. */
export enum Topic {
  CommandUpdated = "COMMAND_UPDATED",
  AlertRaised = "ALERT_RAISED",
  /** Every replica closes the connections that authenticated with the key. */
  ApiKeyRevoked = "API_KEY_REVOKED",
  /** The device, its presence, reported state or active commands changed; it is read when delivered. */
  DeviceUpdated = "DEVICE_UPDATED",
  /** Every replica reads the tenant's payload limits again. */
  PayloadLimitsChanged = "PAYLOAD_LIMITS_CHANGED",
  /** Every replica adds the device to its directory. */
  DeviceRegistered = "DEVICE_REGISTERED",
  /** A fleet command was created or changed (status, progress): drivers and subscribers. */
  FleetCommandUpdated = "FLEET_COMMAND_UPDATED",
}

/**
 * What travels on the bus: the command as stored (with its version and claim, so every replica's
 * memory of active commands stays current) except the input hash; subscribers select only the
 * schema's fields.
 */
export type CommandUpdate = Omit<Command, "inputHash">;

export type PubSubArgs = {
  [Topic.CommandUpdated]: [CommandUpdate];
  [Topic.AlertRaised]: [Alert];
  [Topic.ApiKeyRevoked]: [{ id: string }];
  [Topic.DeviceUpdated]: [DeviceRef];
  [Topic.PayloadLimitsChanged]: [{ tenant: string }];
  [Topic.DeviceRegistered]: [Device];
  [Topic.FleetCommandUpdated]: [FleetCommand];
};

export type GatewayPubSub = ReturnType<typeof createPubSub<PubSubArgs>>;

export function createGatewayPubSub(eventTarget?: EventTarget): GatewayPubSub {
  return createPubSub<PubSubArgs>(eventTarget ? { eventTarget: eventTarget as never } : undefined);
}

const COMMAND_DATES = ["createdAt", "updatedAt", "sentAt", "deliveredAt", "completedAt", "deadline", "expiresAt", "notBefore"] as const;
const FLEET_DATES = ["createdAt", "updatedAt", "startAt", "startedAt", "finishedAt"] as const;
const ALERT_DATES = ["raisedAt", "resolvedAt"] as const;

/** Restores the Date fields that JSON turned into strings on the way through the broker. */
export function reviveEvent(type: string, data: unknown): unknown {
  const record = data as Record<string, unknown>;
  const toDates = (target: Record<string, unknown>, keys: readonly string[]) => {
    for (const key of keys) if (typeof target[key] === "string") target[key] = new Date(target[key] as string);
  };
  if (type === Topic.CommandUpdated) {
    toDates(record, COMMAND_DATES);
    for (const event of (record.history as Array<Record<string, unknown>>) ?? []) toDates(event, ["at"]);
    if (record.escalation) toDates(record.escalation as Record<string, unknown>, ["at"]);
    if (record.claim) toDates(record.claim as Record<string, unknown>, ["until"]);
  } else if (type === Topic.AlertRaised) {
    toDates(record, ALERT_DATES);
  } else if (type === Topic.FleetCommandUpdated) {
    toDates(record, FLEET_DATES);
  } else if (type === Topic.DeviceRegistered) {
    toDates(record, ["createdAt", "lastSeenAt"]);
  }
  return record;
}

export function toCommandUpdate(command: Command): CommandUpdate {
  const { inputHash: _inputHash, ...update } = command;
  return update;
}
