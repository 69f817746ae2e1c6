/**
 * Shape checks for values from outside (GraphQL arguments, device replies, telemetry), done with an
 * explicit stack: a value nested thousands deep would overflow anything recursive (JSON.stringify,
 * JSON Schema validation, key escaping, BSON), so it is refused before any of that sees it.
 */

/** Deepest nesting accepted in JSON from outside; payloads, results and readings are a few levels. */
export const MAX_JSON_DEPTH = 32;

/** A string that is not well-formed UTF-16 (a lone surrogate) cannot be stored as UTF-8 without loss. */
const LONE_SURROGATE = /\p{Surrogate}/u;

export type ShapeProblem = { problem: "too_deep" | "ill_formed_string"; path: Array<string | number> };

/** The first problem found, depth first, or undefined. `value` itself is at depth 0. */
export function findShapeProblem(value: unknown, maxDepth: number): ShapeProblem | undefined {
  const stack: Array<{ value: unknown; path: Array<string | number> }> = [{ value, path: [] }];
  while (stack.length) {
    const { value: current, path } = stack.pop()!;
    if (typeof current === "string") {
      if (LONE_SURROGATE.test(current)) return { problem: "ill_formed_string", path };
      continue;
    }
    if (current === null || typeof current !== "object" || current instanceof Date) continue;
    if (path.length >= maxDepth) return { problem: "too_deep", path };
    if (Array.isArray(current)) {
      current.forEach((item, index) => stack.push({ value: item, path: [...path, index] }));
      continue;
    }
    for (const [key, item] of Object.entries(current)) {
      if (LONE_SURROGATE.test(key)) return { problem: "ill_formed_string", path: [...path, key] };
      stack.push({ value: item, path: [...path, key] });
    }
  }
  return undefined;
}

/** True when `value` has containers nested deeper than `maxDepth` (depth 0 is `value` itself). */
export function exceedsDepth(value: unknown, maxDepth: number): boolean {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (stack.length) {
    const { value: current, depth } = stack.pop()!;
    if (current === null || typeof current !== "object") continue;
    if (depth >= maxDepth) return true;
    for (const item of Array.isArray(current) ? current : Object.values(current)) stack.push({ value: item, depth: depth + 1 });
  }
  return false;
}
