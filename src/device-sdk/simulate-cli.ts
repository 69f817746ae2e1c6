import { parseArgs } from "node:util";
import { createLogger } from "../logger";
import { DEVICE_ID_PATTERN } from "../mqtt/topics";
import type { DeviceClient } from "./device-client";
import { createSimulatedDevice } from "./simulated-device";

const USAGE =
  "usage: npm run simulate -- --devices N [--latency-ms A-B] [--fail-rate x] [--drop-rate x] [--flap-rate x] " +
  "[--broker URL] [--prefix iot] [--id-prefix sim-] [--model thermostat] [--help]";
const STATUS_EVERY_MS = 5_000;
const FLAP_CHECK_EVERY_MS = 1_000;
const START_BATCH = 100;

interface SimulateConfig {
  devices: number;
  latencyMs: [number, number];
  failRate: number;
  dropRate: number;
  flapRate: number;
  brokerUrl: string;
  prefix: string;
  idPrefix: string;
  model: string;
}

class UsageError extends Error {}

function parseConfig(args: string[]): SimulateConfig {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      help: { type: "boolean", default: false },
      devices: { type: "string" },
      "latency-ms": { type: "string", default: "50-250" },
      "fail-rate": { type: "string", default: "0" },
      "drop-rate": { type: "string", default: "0" },
      "flap-rate": { type: "string", default: "0" },
      broker: { type: "string", default: process.env.MQTT_URL ?? "mqtt://127.0.0.1:1883" },
      prefix: { type: "string", default: "iot" },
      "id-prefix": { type: "string", default: "sim-" },
      model: { type: "string", default: "thermostat" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (values.devices === undefined) throw new UsageError("--devices is required");
  const devices = Number(values.devices);
  if (!Number.isInteger(devices) || devices < 1) throw new UsageError(`--devices must be a positive integer, got ${JSON.stringify(values.devices)}`);
  const latency = /^(\d+)(?:-(\d+))?$/.exec(values["latency-ms"]);
  const latencyMs: [number, number] = latency ? [Number(latency[1]), Number(latency[2] ?? latency[1])] : [NaN, NaN];
  if (!latency || latencyMs[0] > latencyMs[1]) throw new UsageError(`--latency-ms must be A-B with A <= B (ms), got ${JSON.stringify(values["latency-ms"])}`);
  let protocol: string;
  try {
    protocol = new URL(values.broker).protocol;
  } catch {
    throw new UsageError(`--broker must be a URL, got ${JSON.stringify(values.broker)}`);
  }
  if (!["mqtt:", "mqtts:", "ws:", "wss:"].includes(protocol)) throw new UsageError(`--broker must be mqtt://, mqtts://, ws:// or wss://, got ${protocol}//`);
  if (values.prefix === "" || /[+#]/.test(values.prefix)) throw new UsageError("--prefix must be non-empty and free of MQTT wildcards");
  if (!DEVICE_ID_PATTERN.test(`${values["id-prefix"]}${devices}`)) throw new UsageError(`--id-prefix gives invalid device ids: ${values["id-prefix"]}${devices}`);
  if (values.model === "") throw new UsageError("--model must be non-empty");
  return {
    devices,
    latencyMs,
    failRate: parseRate("--fail-rate", values["fail-rate"]),
    dropRate: parseRate("--drop-rate", values["drop-rate"]),
    flapRate: parseRate("--flap-rate", values["flap-rate"]),
    brokerUrl: values.broker,
    prefix: values.prefix,
    idPrefix: values["id-prefix"],
    model: values.model,
  };
}

function parseRate(flag: string, text: string): number {
  const rate = Number(text);
  if (text.trim() === "" || !(rate >= 0 && rate <= 1)) throw new UsageError(`${flag} must be a number in [0, 1], got ${JSON.stringify(text)}`);
  return rate;
}

function statusLine(devices: DeviceClient[]): string {
  let online = 0;
  let received = 0;
  let executed = 0;
  let replies = 0;
  for (const device of devices) {
    if (device.online) online++;
    received += device.received;
    executed += device.executed;
    replies += device.replied;
  }
  return `${new Date().toISOString()} online ${online}/${devices.length}, commands received ${received}, executed ${executed}, replies ${replies}`;
}

/** Flapping: each second, each online device crashes (no graceful stop, so its will fires) with probability flapRate and comes back 1–3 s later. */
function startFlapping(devices: DeviceClient[], flapRate: number, log: ReturnType<typeof createLogger>): () => void {
  const down = new Set<DeviceClient>();
  const restarts = new Set<NodeJS.Timeout>();
  let stopped = false;
  const restartLater = (device: DeviceClient) => {
    if (stopped) return;
    const timer = setTimeout(() => {
      restarts.delete(timer);
      device.start().then(
        () => down.delete(device),
        (err: Error) => {
          log.warn({ deviceId: device.deviceId, err: err.message }, "restart failed, retrying");
          restartLater(device);
        },
      );
    }, 1_000 + Math.random() * 2_000);
    restarts.add(timer);
  };
  const check = setInterval(() => {
    for (const device of devices) {
      if (down.has(device) || !device.online || Math.random() >= flapRate) continue;
      down.add(device);
      void device.stop({ graceful: false }).then(() => restartLater(device));
    }
  }, FLAP_CHECK_EVERY_MS);
  return () => {
    stopped = true;
    clearInterval(check);
    for (const timer of restarts) clearTimeout(timer);
  };
}

async function main(): Promise<void> {
  let config: SimulateConfig;
  try {
    config = parseConfig(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError) && !(err instanceof TypeError)) throw err;
    // parseArgs reports unknown flags and missing values as TypeError (ERR_PARSE_ARGS_*).
    console.error(`simulate: ${err.message} (see --help)`);
    process.exit(2);
  }
  // Device logs at warn by default so the status lines stay readable.
  const log = createLogger(process.env.LOG_LEVEL ?? "warn");
  const devices = Array.from({ length: config.devices }, (_, i) =>
    createSimulatedDevice({
      deviceId: `${config.idPrefix}${i + 1}`,
      model: config.model,
      brokerUrl: config.brokerUrl,
      topicPrefix: config.prefix,
      latencyMs: config.latencyMs,
      failRate: config.failRate,
      dropRate: config.dropRate,
      log,
    }),
  );

  // In batches, so a large fleet does not open thousands of connections at once.
  for (let i = 0; i < devices.length; i += START_BATCH) {
    try {
      await Promise.all(devices.slice(i, i + START_BATCH).map((device) => device.start()));
    } catch (err) {
      console.error(`simulate: cannot connect to ${config.brokerUrl}: ${(err as Error).message}`);
      await Promise.all(devices.map((device) => device.stop({ graceful: false })));
      process.exit(1);
    }
  }
  console.log(
    `simulate: ${config.devices} ${config.model} devices (${config.idPrefix}1..${config.idPrefix}${config.devices}) on ${config.brokerUrl}, prefix ${config.prefix}`,
  );

  const status = setInterval(() => console.log(statusLine(devices)), STATUS_EVERY_MS);
  const stopFlapping = config.flapRate > 0 ? startFlapping(devices, config.flapRate, log) : () => undefined;
  let stopping = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (stopping) process.exit(130); // a second signal: do not wait any longer
    stopping = true;
    console.log(`simulate: ${signal}, stopping`);
    clearInterval(status);
    stopFlapping();
    await Promise.all(devices.map((device) => device.stop()));
    console.log(statusLine(devices));
  };
  process.on("SIGINT", (signal) => void shutdown(signal));
  process.on("SIGTERM", (signal) => void shutdown(signal));
}

main().catch((err: Error) => {
  console.error(`simulate: ${err.message}`);
  process.exit(1);
});
