import { fork, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createClient, type Client } from "graphql-ws";
import { MongoClient } from "mongodb";
import WebSocket from "ws";
import { signToken } from "../src/auth/jwt";
import { createSimulatedDevice, type DeviceClient } from "../src/device-sdk";
import { startEmbeddedStore } from "../src/embedded/ferretdb";
import { createLogger } from "../src/logger";
import { renderLineChart } from "./chart";
import { ChildChannel, type FloorRunResult, type MemorySample } from "./ipc";
import { Progress } from "./progress";
import { resultTable, shapeProblems, type BenchResult, type FanoutStage, type LevelResult } from "./result";
import { percentiles, round, saturated } from "./stats";

const USAGE = "usage: npm run bench [-- --quick] [--out FILE] [--broker aedes|mosquitto] [--profile DIR]";
const JWT_SECRET = "bench-secret-0123456789-abcdefghijklmnop";
const TENANT = "bench";
const MB = 1024 * 1024;

interface Plan {
  levels: number[];
  levelMs: number;
  warmupMs: number;
  devices: number;
  fanout: number[];
  fanoutCommands: number;
  /** Commands the gateway completes before its heap is measured again. */
  memoryCommands: number;
  latencyConcurrency: number;
}

// Levels must last several latencies to mean anything; the closed loop saturates the embedded store early.
const PLANS: Record<"quick" | "full", Plan> = {
  quick: { levels: [1, 4, 16], levelMs: 3_500, warmupMs: 1_500, devices: 32, fanout: [1, 100, 1000], fanoutCommands: 6, memoryCommands: 0, latencyConcurrency: 1 },
  full: {
    levels: [1, 2, 4, 8, 16, 32, 64],
    levelMs: 12_000,
    warmupMs: 4_000,
    devices: 64,
    fanout: [1, 100, 1000],
    fanoutCommands: 25,
    memoryCommands: 10_000,
    latencyConcurrency: 1,
  },
};

const SEND = `mutation Send($input: SendCommandInput!) { sendCommand(input: $input) { id } }`;
const REGISTER = `mutation Register($input: RegisterDeviceInput!) { registerDevice(input: $input) { id } }`;
const UPDATES = `subscription Updates($deviceId: ID) { commandUpdated(deviceId: $deviceId) { id status updatedAt } }`;

interface CommandUpdatedEvent {
  id: string;
  status: string;
  updatedAt: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      out: { type: "string" },
      broker: { type: "string", default: "aedes" },
      profile: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.broker !== "aedes" && values.broker !== "mosquitto") throw new Error(`--broker must be aedes or mosquitto\n${USAGE}`);
  const plan = PLANS[values.quick ? "quick" : "full"];
  const at = new Date();
  const out = resolve(values.out ?? join("bench", "results", `${at.toISOString().replace(/[:.]/g, "-")}.json`));
  const runId = Math.random().toString(36).slice(2, 8);
  const mosquittoUrl = process.env.BENCH_MOSQUITTO_URL ?? "mqtt://127.0.0.1:1883";
  const log = createLogger(process.env.LOG_LEVEL ?? "warn");
  const cleanup: Array<() => Promise<unknown>> = [];
  const progress = new Progress(5 + plan.levels.length * 2 + plan.fanout.length + 1);
  let step = 0;
  const phase = (name: string) => progress.update(step++, name);

  try {
    phase("starting the store");
    const dataDir = mkdtempSync(join(tmpdir(), "gateway-bench-"));
    cleanup.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const store = await startEmbeddedStore({ dataDir, log });
    cleanup.push(() => store.stop());

    // The bench's own connection, only to clear finished commands between levels.
    const storeClient = await MongoClient.connect(store.uri);
    cleanup.push(() => storeClient.close());
    const clearFinished = () =>
      Promise.all(["bench_gateway", "bench_floor"].map((db) => storeClient.db(db).collection("commands").deleteMany({ status: "SUCCEEDED" })));

    phase("starting the gateway and the floor");
    const brokerEnv: Record<string, string> = values.broker === "mosquitto" ? { MQTT_URL: mosquittoUrl } : {};
    const execArgv = ["--expose-gc", ...(values.profile ? ["--cpu-prof", `--cpu-prof-dir=${resolve(values.profile)}`] : [])];
    const gatewayChild = forkChild("gateway-process.js", execArgv, {
      MONGODB_URI: store.uri,
      MONGODB_DB: "bench_gateway",
      MQTT_TOPIC_PREFIX: `bench-${runId}-g`,
      MQTT_PORT: "0",
      PORT: "0",
      HOST: "127.0.0.1",
      JWT_SECRET,
      DEMO: "0",
      ...brokerEnv,
    });
    const floorChild = forkChild("floor-process.js", ["--expose-gc"], {
      MONGODB_URI: store.uri,
      MONGODB_DB: "bench_floor",
      MQTT_TOPIC_PREFIX: `bench-${runId}-f`,
      ...brokerEnv,
    });
    const [gatewayReady, floorReady] = await Promise.all([ChildChannel.ready(gatewayChild), ChildChannel.ready(floorChild)]);
    const gateway = new ChildChannel(gatewayChild);
    const floor = new ChildChannel(floorChild);
    cleanup.push(() => stopChild(floor));
    cleanup.push(() => stopChild(gateway));
    const baseUrl = `http://127.0.0.1:${gatewayReady.port}`;
    const api = new GatewayApi(baseUrl, {
      admin: await signToken(JWT_SECRET, { sub: "bench-admin", tenant: TENANT, roles: ["admin"] }),
      operator: await signToken(JWT_SECRET, { sub: "bench-operator", tenant: TENANT, roles: ["operator"] }),
    });

    phase("registering and connecting devices");
    const gatewayDeviceIds = Array.from({ length: plan.devices }, (_, i) => `bench-${runId}-g${i}`);
    const floorDeviceIds = Array.from({ length: plan.devices }, (_, i) => `bench-${runId}-f${i}`);
    const fanoutDeviceId = `bench-${runId}-fan`;
    for (const id of [...gatewayDeviceIds, fanoutDeviceId]) await api.registerDevice(id);
    const devices = [
      ...[...gatewayDeviceIds, fanoutDeviceId].map((id) => device(id, gatewayReady.mqttUrl, `bench-${runId}-g`)),
      ...floorDeviceIds.map((id) => device(id, floorReady.mqttUrl, `bench-${runId}-f`)),
    ];
    cleanup.push(() => Promise.all(devices.map((d) => d.stop({ graceful: false }))));
    for (let i = 0; i < devices.length; i += 50) await Promise.all(devices.slice(i, i + 50).map((d) => d.start()));

    const completions = await api.completions(gatewayDeviceIds[0]!);
    cleanup.push(() => completions.close());
    const gatewayLoad = new GatewayLoad(api, completions, gatewayDeviceIds);
    const floorRun = (concurrency: number, durationMs: number) =>
      floor.request<FloorRunResult>({ kind: "run", run: { concurrency, durationMs, deviceIds: floorDeviceIds } });

    phase("warming up");
    await gatewayLoad.run(4, plan.warmupMs);
    await floorRun(4, plan.warmupMs);
    await clearFinished();
    const heapBefore = await gateway.request<MemorySample>({ kind: "memory" });
    let commandsSinceHeap = 0;

    const levels = { gateway: [] as LevelResult[], floor: [] as LevelResult[] };
    for (const concurrency of plan.levels) {
      // Every write of FerretDB v1 on SQLite scans its collection, so each level starts from the same
      // (empty) store; gateway then floor, so both see the same machine and the same store size.
      await clearFinished();
      phase(`throughput: gateway, ${concurrency} in flight`);
      const g = await gatewayLoad.run(concurrency, plan.levelMs);
      commandsSinceHeap += g.completed;
      levels.gateway.push(levelResult(concurrency, g));
      phase(`throughput: floor, ${concurrency} in flight`);
      levels.floor.push(levelResult(concurrency, await floorRun(concurrency, plan.levelMs)));
      if (saturated(levels.gateway.map((l) => l.commandsPerSec)) && saturated(levels.floor.map((l) => l.commandsPerSec))) break;
    }
    const best = (rows: LevelResult[]) => rows.reduce((a, b) => (b.commandsPerSec > a.commandsPerSec ? b : a));
    if (commandsSinceHeap < plan.memoryCommands) {
      phase(`memory: ${plan.memoryCommands} commands`);
      const concurrency = best(levels.gateway).concurrency;
      while (commandsSinceHeap < plan.memoryCommands) {
        await clearFinished();
        commandsSinceHeap += (await gatewayLoad.run(concurrency, 5_000)).completed;
      }
    }
    const heapAfter = await gateway.request<MemorySample>({ kind: "memory" });
    await completions.close();

    const memoryBeforeFanout = await gateway.request<MemorySample>({ kind: "memory" });
    const fanout = new Fanout(api, fanoutDeviceId);
    cleanup.push(() => fanout.close());
    const stages: FanoutStage[] = [];
    for (const subscribers of plan.fanout) {
      phase(`fan-out: ${subscribers} subscribers`);
      await fanout.grow(subscribers);
      const delays = await fanout.measure(plan.fanoutCommands);
      const memory = await gateway.request<MemorySample>({ kind: "memory" });
      const p = percentiles(delays);
      stages.push({ subscribers, deliveries: delays.length, p50Ms: p.p50, p99Ms: p.p99, rssMb: round(memory.rss / MB) });
    }
    await fanout.close();
    const largest = stages[stages.length - 1]!;

    const latencyLevel = (rows: LevelResult[]) => rows.find((l) => l.concurrency === plan.latencyConcurrency)!;
    const result: BenchResult = {
      throughput: {
        gatewayCommandsPerSec: best(levels.gateway).commandsPerSec,
        floorCommandsPerSec: best(levels.floor).commandsPerSec,
        ratio: round(best(levels.gateway).commandsPerSec / best(levels.floor).commandsPerSec),
        levels,
      },
      latencyMs: { gateway: latencyLevel(levels.gateway).latencyMs, floor: latencyLevel(levels.floor).latencyMs, concurrency: plan.latencyConcurrency },
      fanout: { ...largest, stages },
      memory: {
        rssMbPer1000Subscriptions: round(((largest.rssMb - memoryBeforeFanout.rss / MB) * 1000) / largest.subscribers),
        commands: commandsSinceHeap,
        heapUsedMbBefore: round(heapBefore.heapUsed / MB),
        heapUsedMbAfter: round(heapAfter.heapUsed / MB),
        rssMbAfter: round(heapAfter.rss / MB),
      },
      store: "FerretDB v1.24 (SQLite), embedded",
      broker: values.broker === "mosquitto" ? `Mosquitto (${mosquittoUrl})` : "aedes, embedded in the gateway (the floor: its own aedes)",
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpuModel(),
      gatewayProcess: "child process (node --expose-gc dist/bench/gateway-process.js); load generator and devices in the bench process",
      quick: values.quick,
      at: at.toISOString(),
    };
    const problems = shapeProblems(result);
    if (problems.length) throw new Error(`result has the wrong shape: ${problems.join("; ")}`);

    phase("writing results");
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    const svg = out.replace(/\.json$/, "") + ".svg";
    writeFileSync(svg, latencyChart(result));
    progress.done();
    console.log(resultTable(result));
    console.log(`\n${result.cpus} × ${result.cpuModel}, node ${result.node}, ${result.store}, ${result.broker}`);
    console.log(`results: ${out}\nchart:   ${svg}`);
  } finally {
    progress.done();
    while (cleanup.length) await cleanup.pop()!().catch((error: Error) => console.error(`bench: cleanup: ${error.message}`));
  }
}

function forkChild(script: string, execArgv: string[], env: Record<string, string>): ChildProcess {
  const child = fork(join(__dirname, script), [], {
    execArgv,
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? "error", ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  return child;
}

async function stopChild(channel: ChildChannel): Promise<void> {
  if (channel.child.exitCode !== null) return;
  const exited = new Promise((resolveExit) => channel.child.once("exit", resolveExit));
  const kill = setTimeout(() => channel.child.kill("SIGKILL"), 10_000);
  await channel.request({ kind: "stop" }).catch(() => undefined);
  await exited;
  clearTimeout(kill);
}

function device(id: string, brokerUrl: string, topicPrefix: string): DeviceClient {
  return createSimulatedDevice({ deviceId: id, model: "thermostat", brokerUrl, topicPrefix, latencyMs: [0, 0] });
}

function levelResult(concurrency: number, run: FloorRunResult): LevelResult {
  return {
    concurrency,
    commandsPerSec: round(run.completed / (run.elapsedMs / 1000), 1),
    completed: run.completed,
    latencyMs: percentiles(run.latenciesMs),
  };
}

/** GraphQL over HTTP and graphql-ws, as a client of the gateway would talk to it. */
class GatewayApi {
  constructor(
    readonly baseUrl: string,
    private readonly tokens: { admin: string; operator: string },
  ) {}

  async request<T>(query: string, variables: Record<string, unknown>, role: "admin" | "operator" = "operator"): Promise<T> {
    const response = await fetch(`${this.baseUrl}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${this.tokens[role]}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data?: T; errors?: unknown[] };
    if (body.errors?.length || !body.data) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
    return body.data;
  }

  registerDevice(id: string): Promise<unknown> {
    return this.request(REGISTER, { input: { id, site: "site-a", model: "thermostat" } }, "admin");
  }

  async sendCommand(deviceId: string): Promise<string> {
    const data = await this.request<{ sendCommand: { id: string } }>(SEND, {
      input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 21 } },
    });
    return data.sendCommand.id;
  }

  /** An operator's graphql-ws connection, open once the server acknowledged `connection_init`. */
  async connect(): Promise<Client> {
    const client = createClient({
      url: `${this.baseUrl.replace(/^http/, "ws")}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${this.tokens.operator}` },
      retryAttempts: 0,
      lazy: false,
    });
    await new Promise<void>((resolveConnected, reject) => {
      client.on("connected", () => resolveConnected());
      client.on("closed", (event) => reject(new Error(`WebSocket closed: ${(event as { code?: number }).code}`)));
    });
    return client;
  }

  subscribe(client: Client, deviceId: string | null, onEvent: (event: CommandUpdatedEvent, receivedAt: number) => void): () => void {
    return client.subscribe<{ commandUpdated: CommandUpdatedEvent }>(
      { query: UPDATES, variables: { deviceId } },
      {
        next: (value) => {
          if (value.data) onEvent(value.data.commandUpdated, Date.now());
        },
        error: (error) => console.error(`bench: subscription error: ${JSON.stringify(error)}`),
        complete: () => undefined,
      },
    );
  }

  /** One subscription to every command of the tenant: resolves `wait(id)` on its SUCCEEDED event. */
  async completions(probeDeviceId: string): Promise<Completions> {
    const client = await this.connect();
    const completions = new Completions(client);
    this.subscribe(client, null, (event) => {
      if (event.status === "SUCCEEDED") completions.succeeded(event.id);
    });
    // There is no acknowledgement of a subscribe message: wait until an event arrives.
    await completions.probe(() => this.sendCommand(probeDeviceId));
    return completions;
  }
}

class Completions {
  private readonly waiting = new Map<string, (at: number) => void>();
  /** SUCCEEDED before the mutation's answer came back. */
  private readonly early = new Map<string, number>();

  constructor(private readonly client: Client) {}

  succeeded(id: string): void {
    const at = performance.now();
    const waiter = this.waiting.get(id);
    if (waiter) {
      this.waiting.delete(id);
      waiter(at);
    } else this.early.set(id, at);
  }

  /** performance.now() at which the command's SUCCEEDED event arrived. */
  wait(id: string): Promise<number> {
    const early = this.early.get(id);
    if (early !== undefined) {
      this.early.delete(id);
      return Promise.resolve(early);
    }
    return new Promise((resolveAt) => this.waiting.set(id, resolveAt));
  }

  async probe(send: () => Promise<string>): Promise<void> {
    for (let i = 0; i < 50; i++) {
      const id = await send();
      const arrived = await Promise.race([this.wait(id).then(() => true), sleep(200).then(() => false)]);
      if (arrived) return;
      this.waiting.delete(id);
    }
    throw new Error("the completions subscription received nothing");
  }

  async close(): Promise<void> {
    await this.client.dispose();
  }
}

/** Closed loop over HTTP: `concurrency` workers, each sending a command and waiting for its SUCCEEDED event. */
class GatewayLoad {
  constructor(
    private readonly api: GatewayApi,
    private readonly completions: Completions,
    private readonly deviceIds: string[],
  ) {}

  async run(concurrency: number, durationMs: number): Promise<FloorRunResult> {
    const latenciesMs: number[] = [];
    const started = performance.now();
    const until = started + durationMs;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, worker) => {
        for (let i = 0; performance.now() < until; i++) {
          const deviceId = this.deviceIds[(worker + i * concurrency) % this.deviceIds.length]!;
          const start = performance.now();
          const id = await this.api.sendCommand(deviceId);
          latenciesMs.push((await this.completions.wait(id)) - start);
        }
      }),
    );
    return { completed: latenciesMs.length, elapsedMs: performance.now() - started, latenciesMs };
  }
}

/** Many graphql-ws connections, each subscribed to one device's updates. */
class Fanout {
  private readonly clients: Client[] = [];
  private readonly received = new Map<string, number>();
  private delays: number[] = [];

  constructor(
    private readonly api: GatewayApi,
    private readonly deviceId: string,
  ) {}

  async grow(total: number): Promise<void> {
    while (this.clients.length < total) {
      const batch = Math.min(100, total - this.clients.length);
      const clients = await Promise.all(Array.from({ length: batch }, () => this.api.connect()));
      for (const client of clients) {
        this.clients.push(client);
        this.api.subscribe(client, this.deviceId, (event, receivedAt) => {
          this.delays.push(receivedAt - Date.parse(event.updatedAt));
          if (event.status === "SUCCEEDED") this.received.set(event.id, (this.received.get(event.id) ?? 0) + 1);
        });
      }
    }
    // Subscribe messages are not acknowledged: a command that reaches every subscriber shows they are all registered.
    for (let i = 0; i < 20 && !(await this.deliverToAll(2_000)); i++);
  }

  /** Delivery delay of every event (transition's updatedAt to arrival) over `commands` commands, one after another. */
  async measure(commands: number): Promise<number[]> {
    this.delays = [];
    for (let i = 0; i < commands; i++) await this.deliverToAll(10_000);
    return this.delays;
  }

  private async deliverToAll(timeoutMs: number): Promise<boolean> {
    const id = await this.api.sendCommand(this.deviceId);
    const deadline = Date.now() + timeoutMs;
    while ((this.received.get(id) ?? 0) < this.clients.length) {
      if (Date.now() > deadline) return false;
      await sleep(5);
    }
    return true;
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((client) => client.dispose()));
  }
}

function latencyChart(result: BenchResult): string {
  const points = (rows: LevelResult[], key: "p50" | "p99") => rows.map((l) => ({ x: l.commandsPerSec, y: l.latencyMs[key], note: key === "p99" ? `c${l.concurrency}` : undefined }));
  return renderLineChart(
    [
      { label: "gateway p50", color: "#1f6fd1", points: points(result.throughput.levels.gateway, "p50") },
      { label: "gateway p99", color: "#1f6fd1", dashed: true, points: points(result.throughput.levels.gateway, "p99") },
      { label: "floor p50", color: "#d1731f", points: points(result.throughput.levels.floor, "p50") },
      { label: "floor p99", color: "#d1731f", dashed: true, points: points(result.throughput.levels.floor, "p99") },
    ],
    {
      title: `Latency against throughput (${result.cpus} × ${result.cpuModel}, node ${result.node})`,
      xLabel: "commands per second (c = commands in flight)",
      yLabel: "latency to SUCCEEDED (ms)",
    },
  );
}

function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpus()[0]?.model ?? "unknown";
  } catch {
    return cpus()[0]?.model ?? "unknown";
  }
}

const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

main().then(
  () => process.exit(0),
  (error: Error) => {
    console.error(`bench failed: ${error.message}`);
    process.exit(1);
  },
);
