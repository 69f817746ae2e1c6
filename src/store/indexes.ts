import type { Collection, Document, IndexDescription } from "mongodb";
import { allIndexes, type IndexFilter } from "./store-ports";

/**
 * Creates the indexes a collection lacks, by name, of those the store keeps (`keep`). Asking only for missing
 * ones keeps start-up cheap and avoids re-sending existing definitions, which some MongoDB-wire servers handle poorly.
 */
export async function ensureIndexes<T extends Document>(collection: Collection<T>, indexes: IndexDescription[], keep: IndexFilter = allIndexes): Promise<void> {
  const existing = new Set<string>();
  try {
    for (const index of await collection.listIndexes().toArray()) existing.add(String(index.name));
  } catch (error) {
    // A collection that does not exist yet has no indexes (NamespaceNotFound).
    if ((error as { code?: number }).code !== 26) throw error;
  }
  const missing = indexes.filter((index) => keep(index) && !existing.has(index.name!));
  if (missing.length) await collection.createIndexes(missing);
}
