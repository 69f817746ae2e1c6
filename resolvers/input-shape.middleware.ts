import type { MiddlewareFn } from "type-graphql";
import { pointerSegment } from "../src/common/json-pointer";
import { findShapeProblem, MAX_JSON_DEPTH } from "../src/common/json-shape";
import { badInput } from "../src/errors";

/** Input objects nest a level or two; JSON arguments (payloads, conditions) get the rest of the bound. */
const MAX_ARGUMENT_DEPTH = MAX_JSON_DEPTH + 2;

/**
 * Every field's arguments, before any resolver or service sees them (HTTP and WebSocket alike): nesting
 * too deep for recursive code (a 10,000-level payload would overflow JSON.stringify into an internal
 * error) and strings that are not well-formed UTF-16 (lone surrogates, which the store turns into U+FFFD,
 * so two different idempotency keys would name one command) are BAD_USER_INPUT on the input field,
 * with a JSON pointer below it.
 */
export const refuseHostileArguments: MiddlewareFn = async ({ args }, next) => {
  const found = findShapeProblem(args, MAX_ARGUMENT_DEPTH);
  if (found) {
    // `input` arguments are named by their field, as everywhere else (`field: "payload"`).
    const [first, ...rest] = found.path;
    const [field, ...below] = first === "input" && rest.length > 0 ? rest : found.path;
    const pointer = below.length ? `/${below.map(pointerSegment).join("/")}` : undefined;
    const where = { field: String(field), ...(pointer !== undefined ? { pointer: pointer.slice(0, 200) } : {}) };
    throw found.problem === "too_deep"
      ? badInput(`${String(field)} is nested deeper than ${MAX_JSON_DEPTH} levels`, where)
      : badInput(`${String(field)} holds a string that is not well-formed UTF-16 (a lone surrogate)`, where);
  }
  return next();
};
