import { badInput } from "../errors";

export const MAX_PAGE_SIZE = 200;

export interface Page<T> {
  items: T[];
  hasNextPage: boolean;
  cursorOf(item: T): string;
}

/** `first` must be 1..MAX_PAGE_SIZE; a bad value is the caller's mistake, not something to clamp silently. */
export function pageSize(first: number | undefined | null): number {
  const size = first ?? 50;
  if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE_SIZE) throw badInput(`first must be between 1 and ${MAX_PAGE_SIZE}`, { field: "first" });
  return size;
}

/** Relay cursors are opaque: base64url of a small JSON array, checked on the way back in. */
export function encodeCursor(position: ReadonlyArray<string | number>): string {
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

export function decodeCursor<T extends Array<string | number>>(cursor: string, shape: ReadonlyArray<"string" | "number">): T {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    if (Array.isArray(value) && value.length === shape.length && value.every((v, i) => typeof v === shape[i])) return value as T;
  } catch {
    // falls through to the error below
  }
  throw badInput("after is not a cursor from this list", { field: "after" });
}

/** Fetches one row more than asked to learn whether another page exists. */
export function toPage<T>(rows: T[], size: number, cursorOf: (item: T) => string): Page<T> {
  return { items: rows.slice(0, size), hasNextPage: rows.length > size, cursorOf };
}
