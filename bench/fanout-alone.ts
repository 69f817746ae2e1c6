import { loadavg } from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { benchDevice, startBenchGateway } from "./children";
import { Fanout, type FanoutSubscription } from "./fanout";
import { clockTicksPerSecond, cpuPercent, descendants, readAllProcStats, readProcStats } from "./proc-cpu";
import { percentiles, round } from "./stats";

/**
 * The benchmark's fan-out stage alone, for profiling it: a gateway child (as bench/run.ts starts it), one
 * device, N graphql-ws subscribers in this process, M commands; prints the delays and the CPU each
 * process used while measuring (the subscribers share the machine with the gateway), and the window of
 * the measurement on the clock of a `--cpu-prof` profile.
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
  const cleanup: Array<() => Promise<unknown>> = [];
  try {
    const execArgv = values.profile ? ["--cpu-prof", `--cpu-prof-dir=${resolve(values.profile)}`] : [];
    const { channel, ready, api, topicPrefix } = await startBenchGateway("fanout", execArgv, cleanup);
    const deviceId = `${topicPrefix}-d`;
    await api.registerDevice(deviceId);
    const device = benchDevice(deviceId, ready.mqttUrl, topicPrefix);
    await device.start();
    cleanup.push(() => device.stop({ graceful: false }));
    const fanout = new Fanout(api, deviceId);
    cleanup.push(() => fanout.close());
    await fanout.grow(subscribers);
    await fanout.subscribe(subscription);

    const ticks = clockTicksPerSecond();
    const pids = { gateway: [channel.child.pid!], store: descendants(readAllProcStats(), process.pid, /^ferretdb/), bench: [process.pid] };
    const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, readProcStats(p)]));
    const load = loadavg().map((x) => round(x));
    const started = performance.now();
    // CLOCK_MONOTONIC in µs, the clock of a --cpu-prof profile's timestamps: the window to read the profile over.
    const windowStart = Number(process.hrtime.bigint() / 1000n);
    const delays = await fanout.measure(commands);
    const elapsed = performance.now() - started;
    const profileWindowUs = [windowStart, Number(process.hrtime.bigint() / 1000n)];
    const cpu = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, round(cpuPercent(before[k]!, readProcStats(p), elapsed, ticks), 1)]));
    const loadAverage = { start: load, end: loadavg().map((x) => round(x)) };
    console.log(JSON.stringify({ subscription, subscribers, commands, seconds: round(elapsed / 1000, 1), delays: percentiles(delays), cpuPercentOfACore: cpu, loadAverage, profileWindowUs }));
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
