import { createSimulatedDevice, type DeviceClient } from "../src/device-sdk";
import { memoryAfterGc, serveParent, type ReadyMessage } from "./ipc";

/** Connections opened at once: each is a presence write in the gateway, and a device gives up on a CONNACK after 5 s. */
const CONNECTING_AT_ONCE = 25;
const CONNECT_ROUNDS = 4;

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
  // A loaded gateway answers some CONNECTs after the device gave up: those are started again, a few rounds.
  let offline = devices;
  for (let round = 0; round < CONNECT_ROUNDS && offline.length; round++) {
    const failed: DeviceClient[] = [];
    for (let i = 0; i < offline.length; i += CONNECTING_AT_ONCE) {
      const batch = offline.slice(i, i + CONNECTING_AT_ONCE);
      const results = await Promise.allSettled(batch.map((d) => d.start()));
      results.forEach((r, k) => r.status === "rejected" && failed.push(batch[k]!));
    }
    offline = failed;
  }
  const online = devices.length - offline.length;
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
