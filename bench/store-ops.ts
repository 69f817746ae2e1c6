import type { CommandStartedEvent, MongoClient } from "mongodb";

/** Store commands a process has issued so far, by command name (`insert`, `update`, `findAndModify`, `find` …). */
export type StoreOpCounts = Record<string, number>;

/**
 * Counts every command the driver sends, from its command monitoring (`commandStarted`). The client must
 * have been created with `monitorCommands: true` (the bench adds `monitorCommands=true` to the connection
 * string, so the gateway's own client needs no option): the driver decides it per connection when opening it.
 */
export function countStoreOps(client: MongoClient): () => StoreOpCounts {
  return countBy(client, (event) => event.commandName);
}

/** The same by collection and command, `commands.insert`, `devices.update` … (`-` when the command names none, e.g. `hello`). */
export function countStoreOpsByCollection(client: MongoClient): () => StoreOpCounts {
  return countBy(client, (event) => {
    const target = (event.command as Record<string, unknown>)[event.commandName];
    return `${typeof target === "string" ? target : "-"}.${event.commandName}`;
  });
}

function countBy(client: MongoClient, key: (event: CommandStartedEvent) => string): () => StoreOpCounts {
  if (!client.options.monitorCommands) throw new Error("the store client was created without monitorCommands: its commands cannot be counted");
  const counts: StoreOpCounts = {};
  client.on("commandStarted", (event) => {
    const k = key(event);
    counts[k] = (counts[k] ?? 0) + 1;
  });
  return () => ({ ...counts });
}

/** What was issued between two snapshots. */
export function opsBetween(before: StoreOpCounts, after: StoreOpCounts): StoreOpCounts {
  const delta: StoreOpCounts = {};
  for (const [name, count] of Object.entries(after)) {
    const d = count - (before[name] ?? 0);
    if (d > 0) delta[name] = d;
  }
  return delta;
}

export function addOps(a: StoreOpCounts, b: StoreOpCounts): StoreOpCounts {
  const sum: StoreOpCounts = { ...a };
  for (const [name, count] of Object.entries(b)) sum[name] = (sum[name] ?? 0) + count;
  return sum;
}

export const totalOps = (counts: StoreOpCounts): number => Object.values(counts).reduce((sum, n) => sum + n, 0);

/**
 * Store commands on the `commands` collection per command id (the `_id` of an insert's document, of a
 * findAndModify's, update's or delete's filter): what one command cost, whoever sent it.
 */
export function countCommandStoreOpsById(client: MongoClient): (ids: readonly string[], over?: number) => CommandStoreOps {
  const byId = new Map<string, number>();
  const add = (id: unknown) => typeof id === "string" && byId.set(id, (byId.get(id) ?? 0) + 1);
  client.on("commandStarted", (event) => {
    const command = event.command as Record<string, unknown>;
    if (command[event.commandName] !== "commands") return;
    if (event.commandName === "insert") for (const doc of (command.documents as Array<{ _id?: unknown }>) ?? []) add(doc._id);
    else if (event.commandName === "findAndModify") add((command.query as { _id?: unknown } | undefined)?._id);
    else if (event.commandName === "update") for (const u of (command.updates as Array<{ q?: { _id?: unknown } }>) ?? []) add(u.q?._id);
    else if (event.commandName === "delete") for (const d of (command.deletes as Array<{ q?: { _id?: unknown } }>) ?? []) add(d.q?._id);
    else if (event.commandName === "find") add((command.filter as { _id?: unknown } | undefined)?._id);
  });
  return (ids, over = Infinity) => ({
    total: ids.reduce((sum, id) => sum + (byId.get(id) ?? 0), 0),
    costlier: ids.filter((id) => (byId.get(id) ?? 0) > over),
  });
}

/** What the commands of some ids cost in all, and which of them cost more than a limit. */
export interface CommandStoreOps {
  total: number;
  costlier: string[];
}
