import type { JSONSchemaType } from "ajv";

/** A kind of command the gateway knows: what its payload looks like and which device models take it. */
export interface CommandTypeDefinition {
  name: string;
  description: string;
  /** JSON Schema (draft 2020-12 subset understood by Ajv) of the payload. */
  payloadSchema: JSONSchemaType<Record<string, unknown>> | Record<string, unknown>;
  defaultTimeoutSeconds: number;
  /** Commands not sent by then expire; null: they wait for the device forever. */
  defaultExpiresInSeconds: number | null;
  /** Device models that accept it; `*` means every model. */
  models: readonly string[];
  /** A newer command of this type replaces older ones still QUEUED for the same device (CONTRACT §6.2). */
  supersedes: boolean;
  /** The device state a command of this type sets once it succeeds: `desired` while it is not yet final. */
  desiredState?: Readonly<Record<string, StateSource>>;
  /** Fields of a SUCCEEDED result that report the device's state; merged into `reported`. */
  reportedState?: readonly string[];
}

/** Where a desired state value comes from: a fixed value, or a field of the command's payload. */
export type StateSource = { value: unknown } | { payloadField: string };

export const ANY_MODEL = "*";

const emptyPayload = { type: "object", additionalProperties: false, properties: {} };

/** The command types of CONTRACT §3. Adding a type means adding an entry here, nothing else. */
export const BUILT_IN_COMMAND_TYPES: readonly CommandTypeDefinition[] = [
  {
    name: "thermostat.setTemperature",
    description: "Set the thermostat's target temperature in degrees Celsius.",
    payloadSchema: {
      type: "object",
      additionalProperties: false,
      required: ["celsius"],
      properties: { celsius: { type: "number", minimum: 5, maximum: 35 } },
    },
    defaultTimeoutSeconds: 30,
    defaultExpiresInSeconds: 3600,
    models: ["thermostat"],
    supersedes: true,
    desiredState: { setpoint: { payloadField: "celsius" } },
    reportedState: ["setpoint"],
  },
  {
    name: "valve.open",
    description: "Open the valve for the given number of seconds, then close it.",
    payloadSchema: {
      type: "object",
      additionalProperties: false,
      required: ["seconds"],
      properties: { seconds: { type: "integer", minimum: 1, maximum: 3600 } },
    },
    defaultTimeoutSeconds: 30,
    // Opening a valve long after it was asked for is worse than not opening it.
    defaultExpiresInSeconds: 300,
    models: ["valve"],
    supersedes: false,
    desiredState: { open: { value: true } },
    reportedState: ["open"],
  },
  {
    name: "valve.close",
    description: "Close the valve now.",
    payloadSchema: emptyPayload,
    defaultTimeoutSeconds: 30,
    defaultExpiresInSeconds: 3600,
    models: ["valve"],
    supersedes: false,
    desiredState: { open: { value: false } },
    reportedState: ["open"],
  },
  {
    name: "device.reboot",
    description: "Restart the device.",
    payloadSchema: emptyPayload,
    defaultTimeoutSeconds: 120,
    defaultExpiresInSeconds: 86_400,
    models: [ANY_MODEL],
    supersedes: false,
  },
];
