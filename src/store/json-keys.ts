/**
 * JSON from outside (payloads, device results) is stored as data. MongoDB-wire stores refuse keys that
 * start with `$` or contain `.` (FerretDB everywhere, MongoDB before 5.0), and BSON cannot hold a NUL in
 * a key (keys are C strings), so such keys are escaped on the way in and restored on the way out:
 * `~` → `~0`, `.` → `~1`, a leading `$` → `~2`, NUL → `~3`. Keys without those characters are stored
 * as they are.
 */
export function escapeJsonKeys(value: unknown): unknown {
  return mapKeys(value, escapeJsonKey);
}

/** One key, escaped: safe as a segment of a dotted field path. */
export function escapeJsonKey(key: string): string {
  return key.replace(/~/g, "~0").replace(/\./g, "~1").replace(/^\$/, "~2").replace(/\0/g, "~3");
}

export function unescapeJsonKeys(value: unknown): unknown {
  return mapKeys(value, (key) => (key.includes("~") ? key.replace(/~([0-3])/g, (_, code: string) => ["~", ".", "$", "\0"][Number(code)]!) : key));
}

function mapKeys(value: unknown, rename: (key: string) => string): unknown {
  if (Array.isArray(value)) return value.map((item) => mapKeys(item, rename));
  if (value === null || typeof value !== "object" || value instanceof Date) return value;
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [rename(key), mapKeys(item, rename)]));
}
