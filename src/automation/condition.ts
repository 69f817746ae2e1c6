import { setFlagsFromString } from "node:v8";
import {
  $and,
  $eq,
  $exists,
  $gt,
  $gte,
  $in,
  $lt,
  $lte,
  $ne,
  $nin,
  $nor,
  $not,
  $options,
  $or,
  $regex,
  and,
  createFactory,
  eq,
  exists,
  gt,
  gte,
  lt,
  lte,
  ne,
  nin,
  nor,
  not,
  or,
  regex,
  within,
} from "@ucast/mongo2js";
import { pointerSegment } from "../common/json-pointer";
import { badInput } from "../errors";

/** A rule's `when`: a MongoDB-style query over one telemetry object, restricted to the operators below. */
export type Condition = Record<string, unknown>;
export type Telemetry = Record<string, unknown>;

export const CONDITION_LIMITS = {
  /** Serialised size of the whole condition. */
  maxBytes: 4096,
  /** Levels of nesting, counting the condition itself as 1. */
  maxDepth: 8,
  /** Elements of a `$in`, `$nin`, `$and`, `$or` or `$nor`. */
  maxArrayLength: 100,
  maxRegexLength: 200,
  maxFieldLength: 200,
} as const;

const LOGICAL_OPERATORS = ["$and", "$or", "$nor"] as const;
const FIELD_OPERATORS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$exists", "$in", "$nin", "$regex", "$options", "$not"] as const;
const ALLOWED = [...LOGICAL_OPERATORS, ...FIELD_OPERATORS].join(" ");
/** Flags V8's linear-time engine supports (it has no case-insensitive mode). */
const REGEX_FLAGS = /^[ms]*$/;

// Telemetry is matched on the event loop, where a backtracking pattern could stall the gateway for
// seconds on a crafted string. Every `$regex` therefore runs on V8's linear-time engine (the `l` flag),
// which this enables; it changes nothing for other regular expressions.
setFlagsFromString("--enable-experimental-regexp-engine");

/**
 * Checks a condition against the allow-list: anything else (`$where`, `$function`, `$expr`, unknown
 * operators, values that the operator cannot take) is BAD_USER_INPUT with `field: "when"` and a JSON
 * pointer to the offending part. Values compared are scalars: nested fields are reached by dotted paths.
 */
export function validateCondition(when: unknown): asserts when is Condition {
  if (!isPlainObject(when)) throw invalid("", 'must be an object, e.g. {"temperature": {"$gt": 30}}');
  if (Buffer.byteLength(JSON.stringify(when)) > CONDITION_LIMITS.maxBytes) {
    throw invalid("", `is larger than ${CONDITION_LIMITS.maxBytes} bytes`);
  }
  checkDocument(when, "", 1);
}

/** A validated condition as a predicate over telemetry (in-process, no store round trip). */
export function compileCondition(when: unknown): (telemetry: Telemetry) => boolean {
  validateCondition(when);
  const test = matcherFor(withLinearRegexes(when) as Condition);
  return (telemetry) => {
    try {
      return test(telemetry);
    } catch {
      return false;
    }
  };
}

function checkDocument(document: Record<string, unknown>, pointer: string, depth: number): void {
  if (depth > CONDITION_LIMITS.maxDepth) throw invalid(pointer, `is nested more than ${CONDITION_LIMITS.maxDepth} levels deep`);
  for (const [key, value] of Object.entries(document)) {
    const at = `${pointer}/${pointerSegment(key)}`;
    if (key.startsWith("$")) {
      if (!(LOGICAL_OPERATORS as readonly string[]).includes(key)) throw disallowedOperator(at, key);
      const conditions = requireArray(value, at, 1);
      conditions.forEach((condition, index) => {
        if (!isPlainObject(condition)) throw invalid(`${at}/${index}`, "must be an object");
        checkDocument(condition, `${at}/${index}`, depth + 1);
      });
    } else {
      checkField(key, at);
      checkFieldCondition(value, at, depth + 1);
    }
  }
}

function checkField(field: string, at: string): void {
  if (field.length > CONDITION_LIMITS.maxFieldLength) throw invalid(at, `field names are at most ${CONDITION_LIMITS.maxFieldLength} characters`);
  for (const segment of field.split(".")) {
    if (!segment) throw invalid(at, "is not a field path: empty segment");
    // Names of Object.prototype would reach the matcher's own internals rather than telemetry fields.
    if (segment === "__proto__" || Object.prototype.hasOwnProperty.call(Object.prototype, segment)) {
      throw invalid(at, `field name ${JSON.stringify(segment)} is reserved`);
    }
  }
}

/** `{"field": value}` (equality) or `{"field": {"$op": …}}`. */
function checkFieldCondition(value: unknown, at: string, depth: number): void {
  if (!isPlainObject(value)) return checkScalar(value, at, true);
  const keys = Object.keys(value);
  if (keys.length === 0 || !keys.every((k) => k.startsWith("$"))) {
    throw invalid(at, 'must be a value or an object of operators; reach nested fields with a dotted path, e.g. "a.b"');
  }
  checkOperators(value, at, depth);
}

function checkOperators(operators: Record<string, unknown>, at: string, depth: number): void {
  if (depth > CONDITION_LIMITS.maxDepth) throw invalid(at, `is nested more than ${CONDITION_LIMITS.maxDepth} levels deep`);
  for (const [operator, value] of Object.entries(operators)) {
    const where = `${at}/${pointerSegment(operator)}`;
    switch (operator) {
      case "$eq":
      case "$ne":
        checkScalar(value, where, true);
        break;
      case "$gt":
      case "$gte":
      case "$lt":
      case "$lte":
        if (typeof value !== "string" && !isFiniteNumber(value)) throw invalid(where, "must be a number or a string");
        break;
      case "$exists":
        if (typeof value !== "boolean") throw invalid(where, "must be true or false");
        break;
      case "$in":
      case "$nin":
        requireArray(value, where, 0).forEach((item, index) => checkScalar(item, `${where}/${index}`, false));
        break;
      case "$regex":
        checkRegex(value, operators.$options, where);
        break;
      case "$options":
        if (!("$regex" in operators)) throw invalid(where, "is only allowed beside $regex");
        if (typeof value !== "string" || !REGEX_FLAGS.test(value)) {
          throw invalid(where, 'may hold the flags "m" and "s"; instead of "i", use classes such as "[Pp]ump"');
        }
        break;
      case "$not":
        if (!isPlainObject(value) || Object.keys(value).length === 0 || !Object.keys(value).every((k) => k.startsWith("$"))) {
          throw invalid(where, "must be an object of operators");
        }
        checkOperators(value, where, depth + 1);
        break;
      default:
        throw disallowedOperator(where, operator);
    }
  }
}

function checkRegex(pattern: unknown, options: unknown, at: string): void {
  if (typeof pattern !== "string") throw invalid(at, "must be a string");
  if (pattern.length > CONDITION_LIMITS.maxRegexLength) throw invalid(at, `must be at most ${CONDITION_LIMITS.maxRegexLength} characters`);
  try {
    linearRegex(pattern, options);
  } catch (error) {
    const message = (error as Error).message;
    if (/linear time/.test(message)) throw invalid(at, "must run in linear time: no backreferences or lookaround");
    throw invalid(at, `is not a valid regular expression: ${message}`);
  }
}

function linearRegex(pattern: string, options: unknown): RegExp {
  return new RegExp(pattern, `${typeof options === "string" && REGEX_FLAGS.test(options) ? options : ""}l`);
}

/** The condition with each `$regex` (and its `$options`) made a linear-time RegExp, which the matcher takes as is. */
function withLinearRegexes(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withLinearRegexes);
  if (!isPlainObject(value)) return value;
  if (typeof value.$regex === "string") {
    const { $regex, $options, ...rest } = value;
    return { ...withLinearRegexes(rest) as object, $regex: linearRegex($regex, $options) };
  }
  return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, withLinearRegexes(v)]));
}

/** Strings, finite numbers and booleans; null too where MongoDB gives it a meaning (missing or null). */
function checkScalar(value: unknown, at: string, allowNull: boolean): void {
  if (typeof value === "string" || typeof value === "boolean" || isFiniteNumber(value) || (allowNull && value === null)) return;
  throw invalid(at, `must be a string, a number${allowNull ? ", a boolean or null" : " or a boolean"}`);
}

function requireArray(value: unknown, at: string, minLength: number): unknown[] {
  if (!Array.isArray(value) || value.length < minLength || value.length > CONDITION_LIMITS.maxArrayLength) {
    throw invalid(at, `must be an array of ${minLength} to ${CONDITION_LIMITS.maxArrayLength} elements`);
  }
  return value;
}

const disallowedOperator = (at: string, operator: string) => invalid(at, `${operator} is not an allowed operator; allowed: ${ALLOWED}`);

const invalid = (pointer: string, message: string) => badInput(`when${pointer} ${message}`, { field: "when", pointer });

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype;

const isFiniteNumber = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value);

/**
 * MongoDB compares values of one type only: `{"$gt": 30}` never matches the string "40". Values of
 * different types are incomparable, which the interpreters read as "neither equal, less nor greater".
 */
function compareSameType(a: unknown, b: unknown): 0 | 1 | -1 {
  if (a === b) return 0;
  if (typeof a !== typeof b || a === null || b === null) return NaN as 0;
  return (a as number) > (b as number) ? 1 : -1;
}

/** Only the allowed operators are known to the parser and the interpreter (CASL's own matcher, ucast). */
const matcherFor = createFactory(
  { $eq, $ne, $gt, $gte, $lt, $lte, $and, $or, $nor, $not, $exists, $in, $nin, $regex, $options },
  { eq, ne, gt, gte, lt, lte, and, or, nor, not, exists, in: within, nin, regex },
  {
    compare: compareSameType,
    // Own fields of objects and arrays only: telemetry is untrusted JSON, and a string has no fields.
    get: (object: unknown, field: string) =>
      typeof object === "object" && object !== null && Object.prototype.hasOwnProperty.call(object, field)
        ? (object as Record<string, unknown>)[field]
        : undefined,
  },
) as (query: Condition) => (telemetry: Telemetry) => boolean;
