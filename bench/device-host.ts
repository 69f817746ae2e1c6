import { createSimulatedDevice, type DeviceClient } from "../src/device-sdk";
import { memoryAfterGc, serveParent, type ReadyMessage } from "./ipc";

/** Connections opened at once: each is a presence write in the gateway, and a device gives up on a CONNACK after 5 s. */
const CONNECTING_AT_ONCE = 25;

/**
 * Simulated thermostats for the fleet bench, in a process of their own (forked by bench/fleet.ts):
 * thousands of MQTT connections and their replies stay off the event loop that times single commands.
 * Devices `${DEVICE_PREFIX}${FROM}` … `${DEVICE_PREFIX}${FROM + COUNT - 1}`, on MQTT_URL under MQTT_TOPIC_PREFIX.
 */
async function main(): Promise<void> {
  const env = process.env;
  const from = Number(env.FROM);
  const count = Number(env.COUNT);
  const devices: DeviceClient[] = Array.from({ length: count }, (_, i) =>
    createSimulatedDevice({ deviceId: `${env.DEVICE_PREFIX}${from + i}`, model: "thermostat", brokerUrl: env.MQTT_URL!, topicPrefix: env.MQTT_TOPIC_PREFIX, latencyMs: [0, 0] }),
  );
  let online = 0;
  for (let i = 0; i < devices.length; i += CONNECTING_AT_ONCE) {
    const batch = await Promise.allSettled(devices.slice(i, i + CONNECTING_AT_ONCE).map((d) => d.start()));
    online += batch.filter((r) => r.status === "fulfilled").length;
  }
  serveParent(
    async (request) => {
      if (request.kind === "memory") return memoryAfterGc();
      throw new Error(`unknown request ${request.kind}`);
    },
    async () => void (await Promise.all(devices.map((d) => d.stop({ graceful: false })))),
  );
  const ready: ReadyMessage = { kind: "ready", mqttUrl: env.MQTT_URL!, devices: online };
  process.send!(ready);
}

main().catch((error: Error) => {
  console.error(`bench device host failed: ${error.message}`);
  process.exit(1);
});
