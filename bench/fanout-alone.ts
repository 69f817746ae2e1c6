import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { signToken } from "../src/auth/jwt";
import { benchDevice, forkChild, stopChild } from "./children";
import { Fanout, type FanoutSubscription } from "./fanout";
import { GatewayApi } from "./gateway-api";
import { ChildChannel } from "./ipc";
import { clockTicksPerSecond, cpuPercent, descendants, readAllProcStats, readProcStats } from "./proc-cpu";
import { percentiles, round } from "./stats";

const JWT_SECRET = "bench-secret-0123456789-abcdefghijklmnop";

/**
 * The benchmark's fan-out stage alone, for profiling it: a gateway child (as bench/run.ts starts it), one
 * device, N graphql-ws subscribers in this process, M commands; prints the delays and the CPU each
 * process used while measuring (the subscribers share the machine with the gateway).
 * `node dist/bench/fanout-alone.js [--subscribers 1000] [--commands 20] [--subscription commandUpdated|deviceUpdated] [--profile DIR]`
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      subscribers: { type: "string", default: "1000" },
      commands: { type: "string", default: "20" },
      subscription: { type: "string", default: "commandUpdated" },
      profile: { type: "string" },
    },
  });
  const subscribers = Number(values.subscribers);
  const commands = Number(values.commands);
  const subscription = values.subscription as FanoutSubscription;
  if (subscription !== "commandUpdated" && subscription !== "deviceUpdated") throw new Error("--subscription must be commandUpdated or deviceUpdated");
  const runId = Math.random().toString(36).slice(2, 8);
  const cleanup: Array<() => Promise<unknown>> = [];
  try {
    const dataDir = mkdtempSync(join(tmpdir(), "gateway-fanout-"));
    cleanup.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const execArgv = ["--expose-gc", ...(process.env.GATEWAY_NODE_ARGS?.split(" ").filter(Boolean) ?? []), ...(values.profile ? ["--cpu-prof", `--cpu-prof-dir=${resolve(values.profile)}`] : [])];
    const child = forkChild("gateway-process.js", execArgv, {
      MONGODB_URI: "",
      DATA_DIR: dataDir,
      MONGODB_DB: "bench_fanout",
      MQTT_TOPIC_PREFIX: `fanout-${runId}`,
      MQTT_PORT: "0",
      PORT: "0",
      HOST: "127.0.0.1",
      JWT_SECRET,
      DEMO: "0",
      RATE_LIMIT_MUTATIONS_PER_MINUTE: "1000000",
    });
    const ready = await ChildChannel.ready(child);
    const gateway = new ChildChannel(child);
    cleanup.push(() => stopChild(gateway));
    const api = new GatewayApi(`http://127.0.0.1:${ready.port}`, {
      admin: await signToken(JWT_SECRET, { sub: "bench-admin", tenant: "bench", roles: ["admin"] }),
      operator: await signToken(JWT_SECRET, { sub: "bench-operator", tenant: "bench", roles: ["operator"] }),
    });
    const deviceId = `fanout-${runId}-d`;
    await api.registerDevice(deviceId);
    const device = benchDevice(deviceId, ready.mqttUrl, `fanout-${runId}`);
    await device.start();
    cleanup.push(() => device.stop({ graceful: false }));
    const fanout = new Fanout(api, deviceId);
    cleanup.push(() => fanout.close());
    await fanout.grow(subscribers);
    await fanout.subscribe(subscription);

    const ticks = clockTicksPerSecond();
    const store = descendants(readAllProcStats(), process.pid, /^ferretdb/);
    const pids = { gateway: [child.pid!], store, bench: [process.pid] };
    const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, readProcStats(p)]));
    const load = loadavg().map((x) => round(x));
    const started = performance.now();
    // CLOCK_MONOTONIC in µs, the clock of a --cpu-prof profile's timestamps: the window to read the profile over.
    const windowStart = Number(process.hrtime.bigint() / 1000n);
    const delays = await fanout.measure(commands);
    const elapsed = performance.now() - started;
    const profileWindowUs = [windowStart, Number(process.hrtime.bigint() / 1000n)];
    const cpu = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, round(cpuPercent(before[k]!, readProcStats(p), elapsed, ticks), 1)]));
    console.log(JSON.stringify({ subscription, subscribers, commands, seconds: round(elapsed / 1000, 1), delays: percentiles(delays), cpuPercentOfACore: cpu, loadAverage: { start: load, end: loadavg().map((x) => round(x)) }, profileWindowUs }));
  } finally {
    while (cleanup.length) await cleanup.pop()!().catch((error: Error) => console.error(`cleanup: ${error.message}`));
  }
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    console.error(`fanout-alone failed: ${error.message}`);
    process.exit(1);
  },
);
