import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { MongoClient, type Collection } from "mongodb";
import { Completions, runClosedLoop, type RunResult, type Side } from "./closed-loop";
import type { GatewayApi } from "./gateway-api";
import { ChildChannel, type MemorySample } from "./ipc";
import { cpuModel, forkChild, startBenchGateway, stopChild } from "./children";
import { Progress } from "./progress";
import { percentiles, round, tailLabel } from "./stats";
import { opsBetween, totalOps, type CommandStoreOps, type StoreOpCounts } from "./store-ops";

const USAGE = "usage: npm run bench:fleet [-- --devices N] [--hosts N] [--idle-seconds N] [--pacing-seconds N] [--out FILE] [--profile DIR]";
const MB = 1024 * 1024;
const FLEET_RATE = 100_000;
const PACING_RATE = 600;
/** Devices that only get single commands (site "single"), never a fleet command's child. */
const SINGLE_DEVICES = 4;
/** A stage's fleet command that has not finished by then fails the bench. */
const FLEET_TIMEOUT_MS = 15 * 60_000;

const REGISTER = `mutation Register($input: RegisterDeviceInput!) { registerDevice(input: $input) { id } }`;
const CREATE = `mutation Create($input: FleetCommandInput!) { createFleetCommand(input: $input) { id status targeted skipped } }`;
const CANCEL = `mutation Cancel($id: ID!) { cancelFleetCommand(id: $id) { id } }`;
const FLEET = `query Fleet($id: ID!) { fleetCommand(id: $id) { id status targeted skipped startedAt finishedAt counts { status count } } }`;

interface FleetView {
  id: string;
  status: string;
  targeted: number;
  skipped: number;
  startedAt: string | null;
  finishedAt: string | null;
  counts: Array<{ status: string; count: number }>;
}

interface ChildRow {
  status: string;
  createdAt: Date;
  completedAt?: Date;
  history?: Array<{ status: string; at: Date }>;
}

/** Children whose `commands` store commands exceed a single command's, sampled: when each step came. */
const COSTLIER_SAMPLE = 8;

/**
 * Issue 12's fleet benchmark. The gateway runs as a child process on the embedded default (as `npm run
 * bench` runs it), with its store commands counted; the simulated thermostats (the fleet's and the few
 * single-command devices) run in `--hosts` device-host processes, the clients and the timing in this one.
 *
 * (a) single sendCommand latency, idle; (b) one fleet command to every fleet device at 100,000 a minute:
 * time to start all children, completions per second, store commands per child, gateway RSS, and the
 * same single-command loop running throughout; (c) pacing: a fleet command at 600 a minute, children
 * started per 5 s and 10 s window against the expected number.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      devices: { type: "string", default: "10000" },
      hosts: { type: "string", default: "4" },
      "idle-seconds": { type: "string", default: "30" },
      "pacing-seconds": { type: "string", default: "90" },
      out: { type: "string" },
      profile: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return console.log(USAGE);
  const fleetDevices = Number(values.devices);
  const hosts = Number(values.hosts);
  const idleMs = Number(values["idle-seconds"]) * 1000;
  const pacingSeconds = Number(values["pacing-seconds"]);
  const pacingDevices = Math.round((PACING_RATE * pacingSeconds) / 60);
  if (![fleetDevices, hosts, idleMs, pacingSeconds].every((n) => Number.isInteger(n) && n > 0) || pacingDevices > fleetDevices) throw new Error(USAGE);

  const at = new Date();
  const loadAtStart = loadavg().map((x) => round(x));
  const out = resolve(values.out ?? join("bench", "results", `fleet-${at.toISOString().replace(/[:.]/g, "-")}.json`));
  const runId = Math.random().toString(36).slice(2, 8);
  const cleanup: Array<() => Promise<unknown>> = [];
  const progress = new Progress(8);
  let step = 0;
  const phase = (name: string) => progress.update(step++, name);
  const cleanUp = async () => {
    while (cleanup.length) await cleanup.pop()!().catch((error: Error) => console.error(`bench: cleanup: ${error.message}`));
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void cleanUp().finally(() => process.exit(130)));

  try {
    phase("starting the gateway");
    const profile = values.profile ? ["--cpu-prof", `--cpu-prof-dir=${resolve(values.profile)}`] : [];
    const { channel: gateway, ready: gatewayReady, api, topicPrefix, database } = await startBenchGateway("fleet", profile, cleanup);
    // The bench's own connection (not counted): the children's timestamps, read once per stage.
    const storeClient = await MongoClient.connect(gatewayReady.mongodbUri!);
    cleanup.push(() => storeClient.close());
    const commands = storeClient.db(database).collection<ChildRow & { fleetCommandId?: string }>("commands");

    phase(`registering ${fleetDevices} fleet devices and ${SINGLE_DEVICES} single-command devices`);
    const fleetPrefix = `fleet-${runId}-`;
    const fleetIds = Array.from({ length: fleetDevices }, (_, i) => `${fleetPrefix}${i}`);
    // Numbered after the fleet's and hosted with the last of its devices (site "single", outside the target): their
    // replies come from a device host as loaded as the children's, so a single command and a child are sent alike.
    const singleIds = Array.from({ length: SINGLE_DEVICES }, (_, i) => `${fleetPrefix}${fleetDevices + i}`);
    const registerStarted = performance.now();
    await inParallel(
      [...fleetIds.map((id) => ({ id, site: "fleet" })), ...singleIds.map((id) => ({ id, site: "single" }))],
      16,
      (input) => api.request(REGISTER, { input: { ...input, model: "thermostat" } }, "admin"),
    );
    const registerSeconds = round((performance.now() - registerStarted) / 1000, 1);

    phase(`connecting ${fleetDevices} devices from ${hosts} device-host processes`);
    const connectStarted = performance.now();
    const perHost = Math.ceil(fleetDevices / hosts);
    const hostChildren = await Promise.all(
      Array.from({ length: hosts }, async (_, h) => {
        const count = Math.min(perHost, fleetDevices - h * perHost) + (h === hosts - 1 ? SINGLE_DEVICES : 0);
        const child = forkChild("device-host.js", [], { MQTT_URL: gatewayReady.mqttUrl, MQTT_TOPIC_PREFIX: topicPrefix, DEVICE_PREFIX: fleetPrefix, FROM: String(h * perHost), COUNT: String(count) });
        const ready = await ChildChannel.ready(child);
        const channel = new ChildChannel(child);
        cleanup.push(() => stopChild(channel));
        return { channel, online: ready.devices ?? 0 };
      }),
    );
    const online = hostChildren.reduce((sum, h) => sum + h.online, 0) - SINGLE_DEVICES;
    const connectSeconds = round((performance.now() - connectStarted) / 1000, 1);
    if (online < fleetDevices) console.error(`bench: only ${online} of ${fleetDevices} fleet devices came online`);
    const single = await singleSide(api, singleIds);
    cleanup.push(() => single.close());
    const ops = () => gateway.request<StoreOpCounts>({ kind: "storeOpsByCollection" });

    phase(`(a) single sendCommand, idle, ${idleMs / 1000} s`);
    await runClosedLoop(single.side, singleIds, 1, 3_000); // warm-up
    single.mutationMs.length = 0;
    single.ids.length = 0;
    /** `commands` collection store commands per command of `ids`, from the gateway's own count by command id. */
    const commandOps = (ids: string[], over?: number) => gateway.request<CommandStoreOps>({ kind: "commandStoreOps", ids, over });
    const perCommand = async (ids: string[]) => round((await commandOps(ids)).total / ids.length, 3);
    const idleOpsBefore = await ops();
    const idle = await runClosedLoop(single.side, singleIds, 1, idleMs);
    const idleOps = opsBetween(idleOpsBefore, await ops());
    const opsPerSingle = round(totalOps(idleOps) / idle.completed);
    const idleResult = singleResult(idle, single.mutationMs.splice(0));
    const idleCommandsOps = await perCommand(single.ids.splice(0));

    phase(`(b) fleet command to ${fleetDevices} devices at ${FLEET_RATE} a minute, single commands alongside`);
    const memoryBefore = await gateway.request<MemorySample>({ kind: "memory" });
    const rss = new RssSampler(gateway.child.pid!);
    const rolloutOpsBefore = await ops();
    const rollout = await createFleet(api, { name: `bench ${runId} 10k`, target: { site: "fleet" }, rate: FLEET_RATE, offline: fleetDevices - online });
    const during = loopUntil(single.side, singleIds, rollout.finished);
    const finished = await rollout.finished;
    const duringRuns = await during;
    const rolloutOps = opsBetween(rolloutOpsBefore, await ops());
    const rssPeakMb = rss.stop();
    const memoryAfter = await gateway.request<MemorySample>({ kind: "memory" });
    const rolloutChildren = await commands.find({ fleetCommandId: rollout.id }, { projection: { _id: 1, status: 1, createdAt: 1, completedAt: 1 } }).toArray();
    const duringCommandsOps = await perCommand(single.ids.splice(0));
    const childIds = rolloutChildren.map((c) => String(c._id));
    const childCommandOps = await commandOps(childIds, Math.round(idleCommandsOps));
    const childCommandsOps = round(childCommandOps.total / childIds.length, 3);
    const costlier = await costlierChildren(commands, childCommandOps);
    const duringSingle = singleResult(mergeRuns(duringRuns), single.mutationMs.splice(0));
    const singlesDuring = duringSingle.completed + duringSingle.failed;
    // The single commands' share taken off by collection and command, at their idle cost.
    const childOpsBy: StoreOpCounts = {};
    for (const [key, n] of Object.entries(rolloutOps)) childOpsBy[key] = round(n - (singlesDuring * (idleOps[key] ?? 0)) / idle.completed, 1);
    // This script's own progress reads (the fleetCommand query once a second, a find each) are an observer's, not the children's.
    const polls = rollout.polls();
    childOpsBy["fleet_commands.find"] = Math.max(0, (childOpsBy["fleet_commands.find"] ?? 0) - polls);
    const childOps = totalOps(childOpsBy);
    const fleetOnly = Object.entries(childOpsBy).filter(([key]) => key.startsWith("fleet_")).reduce((sum, [, n]) => sum + n, 0);
    const startedAt = new Date(finished.startedAt!).getTime();
    const createdTimes = rolloutChildren.map((c) => c.createdAt.getTime()).sort((a, b) => a - b);
    const completedTimes = rolloutChildren.filter((c) => c.status === "SUCCEEDED" && c.completedAt).map((c) => c.completedAt!.getTime());
    const succeeded = completedTimes.length;
    const lastCompleted = Math.max(...completedTimes);
    const fleetStage = {
      devices: fleetDevices,
      online,
      maxPerMinute: FLEET_RATE,
      status: finished.status,
      children: rolloutChildren.length,
      succeeded,
      skipped: finished.skipped,
      secondsToStartAll: round((createdTimes[createdTimes.length - 1]! - startedAt) / 1000, 2),
      startsPerSec: round(createdTimes.length / ((createdTimes[createdTimes.length - 1]! - startedAt) / 1000), 1),
      secondsToComplete: round((new Date(finished.finishedAt!).getTime() - startedAt) / 1000, 2),
      completionsPerSec: round(succeeded / ((lastCompleted - startedAt) / 1000), 1),
      storeOps: rolloutOps,
      storeOpsPerChild: round(childOps / rolloutChildren.length),
      storeOpsPerChildMeasuredAs: `(store commands during the stage − ${singlesDuring} single commands × their idle cost, by collection and command − this script's ${polls} fleetCommand reads) / children`,
      storeOpsPerChildByCollection: Object.fromEntries(Object.entries(childOpsBy).map(([key, n]) => [key, round(n / rolloutChildren.length, 3)])),
      /** The fleet command's own documents (fleet_commands, fleet_targets, fleet_leases), per child. */
      fleetDocumentOpsPerChild: round(fleetOnly / rolloutChildren.length, 3),
      /** Store commands on the `commands` collection by command id, in this stage: a child's against a single command's sent meanwhile. */
      commandsCollectionOpsById: { perChild: childCommandsOps, perSingleDuringRollout: duringCommandsOps, perSingleIdle: idleCommandsOps },
      /** How many children cost more `commands` store commands than a single idle one, and when a sample of them moved. */
      costlierChildren: costlier,
      gatewayRssMb: { beforeAfterGc: round(memoryBefore.rss / MB), peak: rssPeakMb, afterAfterGc: round(memoryAfter.rss / MB) },
      gatewayHeapUsedMb: { before: round(memoryBefore.heapUsed / MB), after: round(memoryAfter.heapUsed / MB) },
      singleDuringRollout: duringSingle,
    };

    phase(`(c) pacing: ${pacingDevices} devices at ${PACING_RATE} a minute (${pacingSeconds} s)`);
    const paced = await createFleet(api, { name: `bench ${runId} pacing`, target: { deviceIds: fleetIds.slice(0, pacingDevices) }, rate: PACING_RATE, offline: fleetDevices - online });
    const pacedFinished = await paced.finished;
    const pacedChildren = await commands.find({ fleetCommandId: paced.id }, { projection: { createdAt: 1 } }).toArray();
    const pacing = pacingResult(
      pacedChildren.map((c) => c.createdAt.getTime()),
      new Date(pacedFinished.startedAt!).getTime(),
      PACING_RATE,
    );

    const result = {
      benchmark: "fleet commands (issue 12)",
      setup: {
        registerSeconds,
        connectSeconds,
        deviceHosts: hosts,
        gateway: "child process (node --expose-gc dist/bench/gateway-process.js) on the embedded default: FerretDB v1.24 (SQLite) and aedes started by the gateway",
        devices: `simulated thermostats (src/device-sdk, 0 ms handler latency) in ${hosts} device-host processes; ${SINGLE_DEVICES} single-command devices (site "single") with the last host's`,
      },
      idleSingle: {
        ...idleResult,
        storeOpsPerCommand: opsPerSingle,
        storeOpsPerCommandByCollection: Object.fromEntries(Object.entries(idleOps).map(([key, n]) => [key, round(n / idle.completed, 3)])),
        storeOps: idleOps,
      },
      fleet: fleetStage,
      pacing: { ...pacing, status: pacedFinished.status },
      targets: {
        pacingWithin5Percent: { pass: Math.abs(pacing.rateErrorPercent) <= 5, rateErrorPercent: pacing.rateErrorPercent, worst10sWindowErrorPercent: pacing.windows10s.worstErrorPercent },
        storeOpsPerChildAtMostSingle: { pass: fleetStage.storeOpsPerChild <= opsPerSingle, perChild: fleetStage.storeOpsPerChild, perSingle: opsPerSingle },
        singleP99DuringRolloutWithin2xIdle: {
          pass: duringSingle.toSucceededMs.p99 <= 2 * idleResult.toSucceededMs.p99,
          idleMs: idleResult.toSucceededMs.p99,
          duringMs: duringSingle.toSucceededMs.p99,
          ratio: round(duringSingle.toSucceededMs.p99 / idleResult.toSucceededMs.p99),
          samples: `${tailLabel(idleResult.toSucceededMs)} idle, ${tailLabel(duringSingle.toSucceededMs)} during`,
        },
      },
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpuModel(),
      loadAverage: { start: loadAtStart, end: loadavg().map((x) => round(x)) },
      at: at.toISOString(),
    };
    phase("writing results");
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    progress.done();
    console.log(JSON.stringify({ idleSingle: idleResult, fleet: { ...fleetStage, storeOps: undefined }, pacing: { ...pacing, windows5s: undefined, windows10s: { ...pacing.windows10s, windows: undefined } }, targets: result.targets }, null, 2));
    console.log(`load average (1/5/15 min): ${result.loadAverage.start.join(" ")} at the start, ${result.loadAverage.end.join(" ")} at the end`);
    console.log(`results: ${out}`);
  } finally {
    progress.done();
    await cleanUp();
  }
}

/**
 * Single commands as a client sends them: `sendCommand` over HTTP, the end from a subscription per
 * single device (not the tenant's, which would carry every child's transitions too). Also records how
 * long each mutation took to answer.
 */
async function singleSide(api: GatewayApi, deviceIds: string[]): Promise<{ side: Side; mutationMs: number[]; ids: string[]; close(): Promise<void> }> {
  const client = await api.connect();
  const completions = new Completions();
  for (const deviceId of deviceIds) api.subscribe(client, deviceId, (event) => completions.transition(event.id, event.status));
  const mutationMs: number[] = [];
  const ids: string[] = [];
  const sent = new Map<string, number>();
  const side: Side = {
    name: "single",
    completions,
    send: async (deviceId) => {
      // Another setpoint each time, so every single command changes the device's reported state (a write), as a child's does.
      const n = (sent.get(deviceId) ?? 0) + 1;
      sent.set(deviceId, n);
      const started = performance.now();
      const id = await api.sendCommand(deviceId, 21 + (n % 2));
      mutationMs.push(performance.now() - started);
      ids.push(id);
      return id;
    },
  };
  // A subscribe is not acknowledged: probe until one end arrives.
  for (let i = 0; ; i++) {
    if (i === 10) throw new Error("the single devices' subscriptions received nothing");
    if ((await completions.wait(await side.send(deviceIds[0]!), 3_000)).status === "SUCCEEDED") break;
  }
  return { side, mutationMs, ids, close: async () => void (await client.dispose()) };
}

/** Each step's time after the child was created, `SENT+4 DELIVERED+9 SUCCEEDED+31` (ms), for a sample of the costlier children. */
async function costlierChildren(commands: Collection<ChildRow>, ops: CommandStoreOps) {
  const sample = await commands.find({ _id: { $in: ops.costlier.slice(0, COSTLIER_SAMPLE) } } as never, { projection: { createdAt: 1, history: 1 } }).toArray();
  const steps = (row: ChildRow) => (row.history ?? []).map((step) => `${step.status}+${step.at.getTime() - row.createdAt.getTime()}`).join(" ");
  return { count: ops.costlier.length, sample: sample.map(steps) };
}

function singleResult(run: RunResult, mutationMs: number[]) {
  return {
    completed: run.completed,
    failed: run.failed,
    sendErrors: run.sendErrors,
    seconds: round(run.elapsedMs / 1000, 1),
    /** From the send to SUCCEEDED arriving at the subscriber. */
    toSucceededMs: percentiles(run.latenciesMs),
    /** The sendCommand mutation's answer alone. */
    mutationMs: percentiles(mutationMs),
  };
}

/** One command in flight on the single devices, in short runs, until `done` settles. */
async function loopUntil(side: Side, deviceIds: string[], done: Promise<unknown>): Promise<RunResult[]> {
  let over = false;
  void done.finally(() => (over = true));
  const runs: RunResult[] = [];
  while (!over) runs.push(await runClosedLoop(side, deviceIds, 1, 2_000));
  return runs;
}

function mergeRuns(runs: RunResult[]): RunResult {
  const sendErrors: Record<string, number> = {};
  const endedAs: Record<string, number> = {};
  for (const run of runs) for (const [message, n] of Object.entries(run.sendErrors)) sendErrors[message] = (sendErrors[message] ?? 0) + n;
  for (const run of runs) for (const [status, n] of Object.entries(run.endedAs)) endedAs[status] = (endedAs[status] ?? 0) + n;
  return {
    completed: runs.reduce((sum, r) => sum + r.completed, 0),
    failed: runs.reduce((sum, r) => sum + r.failed, 0),
    sendErrors,
    endedAs,
    elapsedMs: runs.reduce((sum, r) => sum + r.elapsedMs, 0),
    latenciesMs: runs.flatMap((r) => r.latenciesMs),
  };
}

/**
 * Creates a fleet command; `finished` resolves with it once it is COMPLETED, ABORTED or CANCELED (polled
 * once a second). `offline` targeted devices never came online: their children stay QUEUED, so once
 * every child is started and nothing but those is left, the fleet command is canceled to end the stage.
 */
async function createFleet(
  api: GatewayApi,
  { name, target, rate, offline }: { name: string; target: Record<string, unknown>; rate: number; offline: number },
): Promise<{ id: string; finished: Promise<FleetView>; polls: () => number }> {
  const { createFleetCommand } = await api.request<{ createFleetCommand: { id: string } }>(CREATE, {
    input: { name, target, type: "thermostat.setTemperature", payload: { celsius: 20 }, rollout: { maxPerMinute: rate } },
  });
  const id = createFleetCommand.id;
  let polls = 0;
  const finished = (async () => {
    const until = Date.now() + FLEET_TIMEOUT_MS;
    while (Date.now() < until) {
      await sleep(1_000);
      const { fleetCommand } = await api.request<{ fleetCommand: FleetView }>(FLEET, { id });
      polls++;
      if (["COMPLETED", "ABORTED", "CANCELED"].includes(fleetCommand.status)) return fleetCommand;
      const count = (status: string) => fleetCommand.counts.find((c) => c.status === status)?.count ?? 0;
      const children = fleetCommand.counts.reduce((sum, c) => sum + c.count, 0);
      const onlyOfflineLeft = count("SENT") + count("DELIVERED") === 0 && count("QUEUED") <= offline;
      if (offline > 0 && fleetCommand.status === "RUNNING" && children + fleetCommand.skipped >= fleetCommand.targeted && onlyOfflineLeft) {
        // It may have completed meanwhile (the next poll sees that).
        await api.request(CANCEL, { id }).catch(() => undefined);
      }
    }
    throw new Error(`fleet command ${id} not finished after ${FLEET_TIMEOUT_MS / 60_000} min`);
  })();
  finished.catch(() => undefined);
  return { id, finished, polls: () => polls };
}

/** Children started per window from the fleet command's start, against rate × window; full windows only. */
function pacingResult(createdAt: number[], startedAt: number, perMinute: number) {
  const times = [...createdAt].sort((a, b) => a - b);
  const first = times[0]!;
  const last = times[times.length - 1]!;
  const windows = (seconds: number) => {
    const expected = (perMinute * seconds) / 60;
    const full = Math.floor((last - first) / (seconds * 1000));
    const counts = Array.from({ length: full }, (_, k) => times.filter((t) => t >= first + k * seconds * 1000 && t < first + (k + 1) * seconds * 1000).length);
    const errors = counts.map((n) => round(((n - expected) / expected) * 100, 1));
    return { seconds, expected, windows: counts, errorPercent: errors, worstErrorPercent: errors.reduce((worst, e) => (Math.abs(e) > Math.abs(worst) ? e : worst), 0) };
  };
  // (n − 1) intervals between the first and the last start.
  const ratePerMinute = ((times.length - 1) / ((last - first) / 1000)) * 60;
  return {
    maxPerMinute: perMinute,
    children: times.length,
    seconds: round((last - first) / 1000, 1),
    firstStartAfterMs: first - startedAt,
    ratePerMinute: round(ratePerMinute, 1),
    rateErrorPercent: round(((ratePerMinute - perMinute) / perMinute) * 100, 2),
    windows5s: windows(5),
    windows10s: windows(10),
  };
}

/** The gateway's resident set every 250 ms from /proc (no GC forced, unlike `memory`): the peak. */
class RssSampler {
  private peakKb = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 250);
  }

  private sample(): void {
    const kb = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${this.pid}/status`, "utf8"))?.[1] ?? 0);
    this.peakKb = Math.max(this.peakKb, kb);
  }

  /** Peak RSS in MB. */
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return round(this.peakKb / 1024);
  }
}

async function inParallel<T>(items: T[], concurrency: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

main().then(
  () => process.exit(0),
  (error: Error) => {
    console.error(`bench failed: ${error.message}`);
    process.exit(1);
  },
);
