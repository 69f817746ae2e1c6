import { signToken } from "../auth/jwt";
import type { Principal } from "../authz/principal";
import { GatewayError } from "../errors";
import type { Gateway } from "../app";
import { createSimulatedDevice, type DeviceClient } from "../device-sdk";
import type { Logger } from "../logger";

export const DEMO_TENANT = "demo";

/** The demo tenant's simulated devices: one of each built-in model, on two sites. */
export const DEMO_DEVICES = [
  { id: "thermostat-1", site: "plant-1", model: "thermostat" },
  { id: "valve-1", site: "plant-1", model: "valve" },
  { id: "thermostat-2", site: "plant-2", model: "thermostat" },
] as const;

export interface Demo {
  tokens: Record<"admin" | "operator" | "viewer", string>;
  stop(): Promise<void>;
}

/**
 * Seeds the demo tenant (devices registered once, kept across restarts), connects simulated devices
 * built on the device SDK, and signs demo tokens for each role.
 */
export async function startDemo(gateway: Gateway, secret: string, topicPrefix: string, log: Logger): Promise<Demo> {
  const admin: Principal = { kind: "user", id: "demo", tenant: DEMO_TENANT, roles: ["admin"] };
  for (const device of DEMO_DEVICES) {
    // Registered through the service like any device (so the embedded broker lets it in); kept across restarts.
    await gateway.services.devices.register(admin, device).catch((error: unknown) => {
      if (!(error instanceof GatewayError && error.code === "CONFLICT")) throw error;
    });
  }
  const clients: DeviceClient[] = DEMO_DEVICES.map((device) =>
    createSimulatedDevice({ deviceId: device.id, model: device.model, brokerUrl: gateway.mqttUrl, topicPrefix, latencyMs: [100, 400] }),
  );
  await Promise.all(clients.map((client) => client.start()));
  log.info({ devices: DEMO_DEVICES.map((d) => d.id) }, "demo devices online");

  const sign = (role: string) => signToken(secret, { sub: `demo-${role}`, tenant: DEMO_TENANT, roles: [role] });
  const tokens = { admin: await sign("admin"), operator: await sign("operator"), viewer: await sign("viewer") };
  return {
    tokens,
    stop: async () => {
      await Promise.all(clients.map((client) => client.stop()));
    },
  };
}

/** Opens the console already signed in with this token (CONTRACT §6.1 `#token=`). */
export function consoleLink(port: number, token: string): string {
  return `http://localhost:${port}/console#token=${token}`;
}

/** What a newcomer pastes to see a command go through. */
export function demoInstructions(port: number, tokens: Demo["tokens"]): string {
  const body = JSON.stringify({
    query:
      'mutation { sendCommand(input: { deviceId: "thermostat-1", type: "thermostat.setTemperature", payload: { celsius: 22 } }) { id status } }',
  });
  return [
    "",
    "Demo tokens (tenant 'demo', valid 12 h):",
    `  admin:    ${tokens.admin}`,
    `  operator: ${tokens.operator}`,
    `  viewer:   ${tokens.viewer}`,
    "",
    "Operator console, signed in as each role (the token stays in the link's fragment, never sent to the server):",
    ...(["admin", "operator", "viewer"] as const).map((role) => `  ${`${role}:`.padEnd(9)} ${consoleLink(port, tokens[role])}`),
    `API explorer (GraphiQL): http://localhost:${port}/graphql`,
    "",
    "Send a command:",
    `  curl -s http://localhost:${port}/graphql -H 'content-type: application/json' \\`,
    `    -H 'authorization: Bearer ${tokens.operator}' \\`,
    `    -d '${body}'`,
    "Then ask for its status (replace ID):",
    `  curl -s http://localhost:${port}/graphql -H 'content-type: application/json' \\`,
    `    -H 'authorization: Bearer ${tokens.operator}' \\`,
    `    -d '{"query":"{ command(id: \\"ID\\") { status result history { status at } } }"}'`,
    "",
  ].join("\n");
}
