import Ajv, { type ErrorObject, type ValidateFunction } from "ajv";
import { pointerSegment } from "../common/json-pointer";
import { badInput } from "../errors";
import { ANY_MODEL, BUILT_IN_COMMAND_TYPES, type CommandTypeDefinition } from "./command-types";

/** Largest payload accepted, serialised; devices are small and links are slow. */
export const MAX_PAYLOAD_BYTES = 16 * 1024;

interface CatalogEntry {
  definition: CommandTypeDefinition;
  validate: ValidateFunction;
}

/** Looks up command types and validates payloads against their JSON Schemas (Ajv, compiled once). */
export class CommandCatalog {
  private readonly entries = new Map<string, CatalogEntry>();

  constructor(definitions: readonly CommandTypeDefinition[] = BUILT_IN_COMMAND_TYPES) {
    const ajv = new Ajv({ allErrors: false, strict: true });
    for (const definition of definitions) {
      this.entries.set(definition.name, { definition, validate: ajv.compile(definition.payloadSchema) });
    }
  }

  list(): CommandTypeDefinition[] {
    return [...this.entries.values()].map((e) => e.definition);
  }

  find(name: string): CommandTypeDefinition | undefined {
    return this.entries.get(name)?.definition;
  }

  /** The type, if it exists and the model accepts it; BAD_USER_INPUT on `type` otherwise. */
  requireFor(name: string, model: string): CommandTypeDefinition {
    const definition = this.find(name);
    if (!definition) throw badInput(`Unknown command type ${JSON.stringify(name)}`, { field: "type" });
    if (!accepts(definition, model)) {
      throw badInput(`Command type ${JSON.stringify(name)} is not accepted by device model ${JSON.stringify(model)}`, { field: "type" });
    }
    return definition;
  }

  /** Returns the payload if valid; BAD_USER_INPUT with a JSON pointer into the payload otherwise. */
  validatePayload(name: string, payload: unknown): Record<string, unknown> {
    const entry = this.entries.get(name);
    if (!entry) throw badInput(`Unknown command type ${JSON.stringify(name)}`, { field: "type" });
    const value = payload ?? {};
    if (Buffer.byteLength(JSON.stringify(value)) > MAX_PAYLOAD_BYTES) {
      throw badInput(`Payload is larger than ${MAX_PAYLOAD_BYTES} bytes`, { field: "payload", pointer: "" });
    }
    if (!entry.validate(value)) throw payloadError(entry.validate.errors?.[0]);
    return value as Record<string, unknown>;
  }
}

export function accepts(definition: CommandTypeDefinition, model: string): boolean {
  return definition.models.includes(ANY_MODEL) || definition.models.includes(model);
}

function payloadError(error: ErrorObject | undefined) {
  if (!error) return badInput("Invalid payload", { field: "payload", pointer: "" });
  const { pointer, message } = describeValidationError(error);
  return badInput(`payload${pointer || ""} ${message}`, { field: "payload", pointer });
}

/** Where in the payload an Ajv error is (a JSON pointer at the offending value or missing field) and what is wrong. */
export function describeValidationError(error: ErrorObject): { pointer: string; message: string } {
  let pointer = error.instancePath;
  let message = error.message ?? "is invalid";
  if (error.keyword === "additionalProperties") {
    const extra = String(error.params.additionalProperty);
    pointer += `/${pointerSegment(extra)}`;
    message = "is not an allowed field";
  } else if (error.keyword === "required") {
    pointer += `/${pointerSegment(String(error.params.missingProperty))}`;
    message = "is required";
  }
  return { pointer, message };
}
