import type { Collection, Document } from "mongodb";
import { FINAL_STATUSES } from "../src/commands/state-machine";

const FINAL = [...FINAL_STATUSES];

/**
 * Keeps the `commands` collection small while a side runs, the same for every side: on FerretDB/SQLite
 * a write costs in proportion to the collection, so a faster side would otherwise slow itself down more.
 * Every second it notes the collection's size and deletes commands final for over a second.
 */
export class CollectionKeeper {
  private timer: NodeJS.Timeout | undefined;
  private tick: Promise<void> = Promise.resolve();
  private largest = 0;
  private error: unknown;

  constructor(private readonly collection: Collection<Document>) {}

  /** Deletes every final command (between runs, when nothing is in flight). */
  async clear(): Promise<void> {
    await this.collection.deleteMany({ status: { $in: FINAL } });
  }

  count(): Promise<number> {
    return this.collection.estimatedDocumentCount();
  }

  start(): void {
    this.largest = 0;
    this.timer = setInterval(() => {
      this.tick = this.tick.then(async () => {
        this.largest = Math.max(this.largest, await this.count());
        await this.collection.deleteMany({ status: { $in: FINAL }, updatedAt: { $lt: new Date(Date.now() - 1_000) } });
      }).catch((error: unknown) => void (this.error ??= error));
    }, 1_000);
  }

  /** Stops, and returns the largest size seen (including now). */
  async stop(): Promise<number> {
    clearInterval(this.timer);
    await this.tick;
    if (this.error) throw this.error;
    return Math.max(this.largest, await this.count());
  }
}
