import { MongoBulkWriteError, MongoServerError, type Collection, type Document, type OptionalUnlessRequiredId, type WriteError } from "mongodb";
import { isDuplicateKeyError } from "./database";

/** The most documents one store command carries. */
const MAX_GROUP = 256;

interface Waiting<T> {
  doc: OptionalUnlessRequiredId<T>;
  resolve(inserted: boolean): void;
  reject(error: unknown): void;
}

/**
 * Inserts into one collection, group-committed: inserts asked for in the same turn of the event loop
 * (a fleet's wave of children), or while the previous group is in flight (many callers at once), go
 * together as one unordered `insertMany`, each document standing or failing alone. Alone, an insert goes
 * at once; together, N inserts cost one store command instead of N and the store does less per document
 * (FerretDB/SQLite, measured: 0.89 ms a document one by one, 0.26 in fours, 0.11 in sixteens). Each
 * resolves as `insertUnique` does: false when its `_id` exists.
 */
export class GroupedInserts<T extends Document> {
  private waiting: Waiting<T>[] = [];
  private inFlight = false;

  constructor(private readonly collection: Collection<T>) {}

  insert(doc: OptionalUnlessRequiredId<T>): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.waiting.push({ doc, resolve, reject });
      if (this.inFlight) return;
      this.inFlight = true;
      // After the microtasks already queued: inserts of sends started together, a step behind, join this one.
      queueMicrotask(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    while (this.waiting.length > 0) {
      await this.insertGroup(this.waiting.splice(0, MAX_GROUP));
    }
    this.inFlight = false;
  }

  private async insertGroup(group: Waiting<T>[]): Promise<void> {
    try {
      await this.collection.insertMany(
        group.map((waiting) => waiting.doc),
        { ordered: false },
      );
      for (const waiting of group) waiting.resolve(true);
    } catch (error) {
      // Only documents refused one by one are told apart; anything else (the store away, the write not
      // acknowledged as asked) leaves every document of the group as uncertain as a failed insertOne would.
      if (!(error instanceof MongoBulkWriteError) || error.result.getWriteConcernError()) {
        for (const waiting of group) waiting.reject(error);
        return;
      }
      const refused = new Map<number, WriteError>();
      for (const writeError of [error.writeErrors].flat()) refused.set(writeError.index, writeError);
      group.forEach((waiting, index) => {
        const writeError = refused.get(index);
        if (!writeError) waiting.resolve(true);
        else if (isDuplicateKeyError(writeError)) waiting.resolve(false);
        else waiting.reject(new MongoServerError({ message: writeError.errmsg ?? "insert refused", code: writeError.code, errmsg: writeError.errmsg }));
      });
    }
  }
}
