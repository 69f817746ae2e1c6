import type { MongoClient } from "mongodb";

/** Store commands a process has issued so far, by command name (`insert`, `update`, `findAndModify`, `find` …). */
export type StoreOpCounts = Record<string, number>;

/**
 * Counts every command the driver sends, from its command monitoring (`commandStarted`). The client must
 * have been created with `monitorCommands: true` (the bench adds `monitorCommands=true` to the connection
 * string, so the gateway's own client needs no option): the driver decides it per connection when opening it.
 */
export function countStoreOps(client: MongoClient): () => StoreOpCounts {
  if (!client.options.monitorCommands) throw new Error("the store client was created without monitorCommands: its commands cannot be counted");
  const counts: StoreOpCounts = {};
  client.on("commandStarted", (event) => {
    counts[event.commandName] = (counts[event.commandName] ?? 0) + 1;
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
