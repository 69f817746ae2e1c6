import { randomUUID } from "node:crypto";
import type { Collection } from "mongodb";
import type { Command } from "../src/commands/command";

type CommandDocument = Omit<Command, "id"> & { _id: string };

/**
 * The `i`-th of a history of final commands as the gateway leaves them: one a second back from `endAt`
 * (100,000 cover 28 hours, inside the default retention), spread over the devices, 1 in 20 FAILED by its
 * device, the rest SUCCEEDED, each with its four transitions in `history`.
 */
export function finalCommand(i: number, deviceIds: readonly string[], endAt: Date): Command {
  const createdAt = new Date(endAt.getTime() - (i + 1) * 1000);
  const at = (ms: number) => new Date(createdAt.getTime() + ms);
  const deviceId = deviceIds[i % deviceIds.length]!;
  const failed = i % 20 === 19;
  const status = failed ? "FAILED" : "SUCCEEDED";
  return {
    id: randomUUID(),
    v: 4,
    tenant: "bench",
    site: "site-a",
    deviceId,
    type: "thermostat.setTemperature",
    payload: { celsius: 18 + (i % 8) },
    status,
    source: "OPERATOR",
    issuedBy: "bench-operator",
    attempt: 1,
    timeoutSeconds: 30,
    deadline: at(30_012),
    expiresAt: at(3_600_000),
    createdAt,
    updatedAt: at(40),
    sentAt: at(12),
    deliveredAt: at(25),
    completedAt: at(40),
    ...(failed ? { error: { code: "DEVICE_ERROR", message: "setpoint out of range" } } : { result: { celsius: 18 + (i % 8), applied: true } }),
    history: [
      { status: "QUEUED", at: createdAt, actor: "bench-operator" },
      { status: "SENT", at: at(12), actor: "gateway" },
      { status: "DELIVERED", at: at(25), actor: `device:${deviceId}` },
      { status, at: at(40), actor: `device:${deviceId}` },
    ],
  };
}

/** Inserts `count` final commands in batches (insertMany: far fewer round trips than the gateway's own path). */
export async function seedFinalCommands(collection: Collection<CommandDocument>, count: number, deviceIds: readonly string[], endAt: Date, batch = 1000): Promise<void> {
  for (let from = 0; from < count; from += batch) {
    const docs = Array.from({ length: Math.min(batch, count - from) }, (_, k) => {
      const { id, ...rest } = finalCommand(from + k, deviceIds, endAt);
      return { _id: id, ...rest };
    });
    await collection.insertMany(docs, { ordered: false });
  }
}
