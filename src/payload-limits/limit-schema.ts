import Ajv, { type ValidateFunction } from "ajv";
import stringify from "safe-stable-stringify";
import { pointerSegment } from "../common/json-pointer";
import { badInput } from "../errors";

/** Bounds on an admin's schema: it is compiled to code and run on every send of the type. */
export const MAX_LIMIT_SCHEMA_BYTES = 4 * 1024;
const MAX_DEPTH = 8;

/**
 * The JSON Schema keywords a payload limit may use. No `pattern`, `format` or `$ref`: a limit bounds
 * values, and these keep compiling and checking it cheap and free of regular-expression backtracking.
 */
const SUBSCHEMA_MAP = new Set(["properties"]);
const SUBSCHEMA = new Set(["items", "not", "additionalProperties"]);
const SUBSCHEMA_LIST = new Set(["allOf", "anyOf", "oneOf"]);
const VALUE_KEYWORDS = new Set([
  "type",
  "required",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "enum",
  "const",
  "minLength",
  "maxLength",
  "minItems",
  "maxItems",
  "title",
  "description",
]);
const RANGE_KEYWORDS = ["minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"] as const;

type Schema = Record<string, unknown>;
const isObject = (value: unknown): value is Schema => typeof value === "object" && value !== null && !Array.isArray(value);
const schemaError = (message: string, pointer: string) => badInput(`schema${pointer} ${message}`, { field: "schema", pointer });

/** BAD_USER_INPUT (field `schema`, a JSON pointer into it) unless `schema` is a bounded object of allowed keywords. */
export function checkLimitSchemaShape(schema: unknown): asserts schema is Schema {
  if (!isObject(schema)) throw schemaError("must be a JSON Schema object", "");
  if (Buffer.byteLength(JSON.stringify(schema)) > MAX_LIMIT_SCHEMA_BYTES) throw schemaError(`must be at most ${MAX_LIMIT_SCHEMA_BYTES} bytes`, "");
  checkKeywords(schema, "", 1);
}

function checkKeywords(schema: unknown, pointer: string, depth: number): void {
  if (typeof schema === "boolean") return;
  if (!isObject(schema)) throw schemaError("must be a schema (an object or a boolean)", pointer);
  if (depth > MAX_DEPTH) throw schemaError(`nests deeper than ${MAX_DEPTH} levels`, pointer);
  for (const [keyword, value] of Object.entries(schema)) {
    const at = `${pointer}/${pointerSegment(keyword)}`;
    if (SUBSCHEMA_MAP.has(keyword)) {
      if (!isObject(value)) throw schemaError("must be an object of schemas", at);
      for (const [name, sub] of Object.entries(value)) checkKeywords(sub, `${at}/${pointerSegment(name)}`, depth + 1);
    } else if (SUBSCHEMA.has(keyword)) {
      checkKeywords(value, at, depth + 1);
    } else if (SUBSCHEMA_LIST.has(keyword)) {
      if (!Array.isArray(value) || value.length === 0) throw schemaError("must be a non-empty array of schemas", at);
      value.forEach((sub, i) => checkKeywords(sub, `${at}/${i}`, depth + 1));
    } else if (!VALUE_KEYWORDS.has(keyword)) {
      throw schemaError(`is not supported in a payload limit (allowed: ${[...SUBSCHEMA_MAP, ...SUBSCHEMA, ...SUBSCHEMA_LIST, ...VALUE_KEYWORDS].join(", ")})`, at);
    }
  }
}

/**
 * Compiled validators of limit schemas, one per distinct schema text, so reloading a tenant's limits
 * does not compile (or leak into Ajv's own cache) again. Oldest entries are dropped beyond `maxEntries`.
 */
export class LimitValidators {
  // `strictTypes` off: a limit is written against a known payload, e.g. {"properties":{"celsius":{"maximum":24}}}.
  private readonly ajv = new Ajv({ allErrors: false, strict: true, strictTypes: false, strictTuples: false, strictRequired: false });
  private readonly compiled = new Map<string, { schema: Schema; validate: ValidateFunction }>();

  constructor(private readonly maxEntries = 10_000) {}

  /** BAD_USER_INPUT on `schema` when Ajv does not accept it as a JSON Schema. */
  compile(schema: Schema): ValidateFunction {
    const key = stringify(schema) ?? "";
    const found = this.compiled.get(key);
    if (found) return found.validate;
    let validate: ValidateFunction;
    try {
      validate = this.ajv.compile(schema);
    } catch (error) {
      throw schemaError(`is not a valid JSON Schema: ${(error as Error).message}`, "");
    }
    this.compiled.set(key, { schema, validate });
    if (this.compiled.size > this.maxEntries) {
      const [oldestKey, oldest] = this.compiled.entries().next().value!;
      this.compiled.delete(oldestKey);
      this.ajv.removeSchema(oldest.schema);
    }
    return validate;
  }
}

interface Bound {
  value: number;
  exclusive: boolean;
}
interface Range {
  lower?: Bound;
  upper?: Bound;
  integer: boolean;
}

/**
 * Why no payload valid for the type could satisfy the limit, in the simple sense of each top-level
 * field's type, numeric range and allowed values (`enum`, `const`); null when some could. Composite
 * keywords (`allOf`, `not` …) are not reasoned about. Throws BAD_USER_INPUT pointing into the limit.
 */
export function checkSatisfiable(typeName: string, typeSchema: Schema, limit: Schema, validators: LimitValidators): void {
  if (limit.type !== undefined && !typesOf(limit.type).has("object")) throw schemaError("must allow an object: payloads are objects", "/type");
  const typeProps = isObject(typeSchema.properties) ? typeSchema.properties : {};
  const closed = typeSchema.additionalProperties === false;
  for (const name of Array.isArray(limit.required) ? limit.required : []) {
    if (closed && typeof name === "string" && !(name in typeProps)) throw schemaError(`names ${JSON.stringify(name)}, which is not a field of ${typeName}`, "/required");
  }
  for (const [name, prop] of Object.entries(isObject(limit.properties) ? limit.properties : {})) {
    const at = `/properties/${pointerSegment(name)}`;
    const typeProp = typeProps[name];
    if (!isObject(typeProp)) {
      if (closed) throw schemaError(`is not a field of ${typeName}`, at);
      continue;
    }
    if (!isObject(prop)) {
      if (prop === false) throw schemaError(`forbids ${JSON.stringify(name)}, a field of ${typeName}`, at);
      continue;
    }
    if (prop.type !== undefined && typeProp.type !== undefined && !typesOverlap(typesOf(prop.type), typesOf(typeProp.type))) {
      throw schemaError(`can never be met: ${typeName} has ${name} of type ${JSON.stringify(typeProp.type)}`, `${at}/type`);
    }
    const range = intersect(rangeOf(typeProp), rangeOf(prop));
    if (isEmpty(range)) {
      const keyword = RANGE_KEYWORDS.find((k) => prop[k] !== undefined) ?? "type";
      throw schemaError(`can never be met: ${typeName} allows ${name} ${describe(rangeOf(typeProp))}`, `${at}/${keyword}`);
    }
    const candidates = prop.const !== undefined ? [prop.const] : Array.isArray(prop.enum) ? prop.enum : undefined;
    if (candidates) {
      const validType = validators.compile(typeProp);
      const validLimit = validators.compile(prop);
      if (!candidates.some((value) => validType(value) && validLimit(value))) {
        throw schemaError(`can never be met: no value it allows is a valid ${name} for ${typeName}`, `${at}/${prop.const !== undefined ? "const" : "enum"}`);
      }
    }
  }
}

/**
 * The type's schema narrowed by limits: numeric ranges and `required` fields are merged into the
 * type's own properties (what a client needs to show the allowed range); any other limit is added
 * as is, under `allOf`.
 */
export function narrowSchema(typeSchema: Schema, limits: readonly Schema[]): Schema {
  const merged = structuredClone(typeSchema);
  const unmerged = limits.filter((limit) => !mergeInto(merged, limit));
  return unmerged.length ? { allOf: [merged, ...unmerged] } : merged;
}

function mergeInto(target: Schema, limit: Schema): boolean {
  if (!Object.keys(limit).every((k) => k === "properties" || k === "required" || (k === "type" && limit.type === "object"))) return false;
  const targetProps = isObject(target.properties) ? (target.properties as Record<string, Schema>) : {};
  const props = limit.properties ?? {};
  if (!isObject(props)) return false;
  for (const [name, prop] of Object.entries(props)) {
    const targetProp = targetProps[name];
    if (!isObject(prop) || !isObject(targetProp)) return false;
    if (!Object.keys(prop).every((k) => k === "type" || (RANGE_KEYWORDS as readonly string[]).includes(k))) return false;
    if (prop.type !== undefined && prop.type !== targetProp.type && !(prop.type === "number" && targetProp.type === "integer")) return false;
    if (Object.values(prop).some((v) => v !== prop.type && typeof v !== "number")) return false;
  }
  const required = limit.required ?? [];
  if (!Array.isArray(required) || !required.every((name) => typeof name === "string" && name in targetProps)) return false;

  for (const [name, prop] of Object.entries(props as Record<string, Schema>)) {
    const targetProp = targetProps[name]!;
    const range = intersect(rangeOf(targetProp), rangeOf(prop));
    for (const keyword of RANGE_KEYWORDS) delete targetProp[keyword];
    if (range.lower) targetProp[range.lower.exclusive ? "exclusiveMinimum" : "minimum"] = range.lower.value;
    if (range.upper) targetProp[range.upper.exclusive ? "exclusiveMaximum" : "maximum"] = range.upper.value;
  }
  if (required.length) target.required = [...new Set([...(Array.isArray(target.required) ? target.required : []), ...required])];
  return true;
}

function typesOf(type: unknown): Set<string> {
  return new Set((Array.isArray(type) ? type : [type]).filter((t): t is string => typeof t === "string"));
}

function typesOverlap(a: Set<string>, b: Set<string>): boolean {
  const widen = (types: Set<string>) => (types.has("integer") ? new Set([...types, "number"]) : types);
  return [...widen(a)].some((t) => widen(b).has(t));
}

function rangeOf(schema: Schema): Range {
  const range: Range = { integer: typesOf(schema.type).has("integer") && !typesOf(schema.type).has("number") };
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
  const min = num(schema.minimum);
  const exclusiveMin = num(schema.exclusiveMinimum);
  const max = num(schema.maximum);
  const exclusiveMax = num(schema.exclusiveMaximum);
  range.lower = tighter(min === undefined ? undefined : { value: min, exclusive: false }, exclusiveMin === undefined ? undefined : { value: exclusiveMin, exclusive: true }, 1);
  range.upper = tighter(max === undefined ? undefined : { value: max, exclusive: false }, exclusiveMax === undefined ? undefined : { value: exclusiveMax, exclusive: true }, -1);
  return range;
}

/** The tighter of two bounds; `direction` 1 for lower bounds (the larger wins), -1 for upper ones. */
function tighter(a: Bound | undefined, b: Bound | undefined, direction: 1 | -1): Bound | undefined {
  if (!a) return b;
  if (!b) return a;
  if (a.value === b.value) return { value: a.value, exclusive: a.exclusive || b.exclusive };
  return (a.value - b.value) * direction > 0 ? a : b;
}

function intersect(a: Range, b: Range): Range {
  return { lower: tighter(a.lower, b.lower, 1), upper: tighter(a.upper, b.upper, -1), integer: a.integer || b.integer };
}

function isEmpty({ lower, upper, integer }: Range): boolean {
  if (!lower || !upper) return false;
  if (integer) {
    const lowest = lower.exclusive ? Math.floor(lower.value) + 1 : Math.ceil(lower.value);
    const highest = upper.exclusive ? Math.ceil(upper.value) - 1 : Math.floor(upper.value);
    return lowest > highest;
  }
  return lower.value > upper.value || (lower.value === upper.value && (lower.exclusive || upper.exclusive));
}

function describe({ lower, upper }: Range): string {
  const from = lower ? `${lower.exclusive ? ">" : ">="} ${lower.value}` : "";
  const to = upper ? `${upper.exclusive ? "<" : "<="} ${upper.value}` : "";
  return [from, to].filter(Boolean).join(" and ") || "any value";
}
