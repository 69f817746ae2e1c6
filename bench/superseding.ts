import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { benchDevice, startBenchGateway } from "./children";
import type { ChildChannel } from "./ipc";
import { round } from "./stats";
import { opsBetween, totalOps, type StoreOpCounts } from "./store-ops";

/**
 * What superseding costs the store (README "Superseding and scheduled commands"): N setpoints sent one
 * after another to an offline thermostat, each superseding the one before (CANCELED at send, while
 * QUEUED); against N commands of a type that supersedes nothing (`device.reboot`) sent to another offline
 * thermostat. The gateway's store commands are counted by the driver's command monitoring, as in
 * bench/run.ts; the difference between the two runs, per superseded command, is what superseding costs.
 * Then the device connects and runs the last setpoint. `npm run bench:superseding [-- --commands N] [--out FILE]`
 */
async function main(): Promise<void> {
  const { values } = parseArgs({ options: { commands: { type: "string", default: "200" }, out: { type: "string" } } });
  const n = Number(values.commands);
  if (!Number.isInteger(n) || n < 2) throw new Error("--commands must be a whole number of at least 2");
  const cleanup: Array<() => Promise<unknown>> = [];
  try {
    const loadAtStart = loadavg().map((x) => round(x));
    const { channel, ready, api, topicPrefix } = await startBenchGateway("superseding", [], cleanup);
    const thermostat = `${topicPrefix}-t`;
    const plain = `${topicPrefix}-p`;
    for (const id of [thermostat, plain]) await api.registerDevice(id);

    // Every transition of the thermostat's commands, to see the superseded ones CANCELED (no store command).
    const statuses = new Map<string, string>();
    const client = await api.connect();
    cleanup.push(async () => client.dispose());
    api.subscribe(client, thermostat, (event) => statuses.set(event.id, event.status));
    // A subscribe is not acknowledged: a first setpoint seen QUEUED shows it registered (and it is superseded by the run's first).
    for (let i = 0; ; i++) {
      if (i === 10) throw new Error("the subscription saw nothing");
      const probe = await api.sendCommand(thermostat, 5);
      if (await until(async () => statuses.get(probe) === "QUEUED", 2_000).then(() => true, () => false)) break;
    }

    const plainOps = await counted(channel, async () => {
      for (let i = 0; i < n; i++) await api.send(plain, "device.reboot", {});
    });
    const ids: string[] = [];
    const supersedingOps = await counted(channel, async () => {
      for (let i = 0; i < n; i++) ids.push(await api.sendCommand(thermostat, 5 + (i % 300) / 10));
    });
    // Each send answers once its supersedings are stored; their events follow on the bus.
    await until(async () => ids.slice(0, -1).every((id) => statuses.get(id) === "CANCELED"), 30_000, "not every earlier setpoint was CANCELED");
    // The run's first N−1, and the probes before it.
    const superseded = [...statuses.values()].filter((status) => status === "CANCELED").length;

    const device = benchDevice(thermostat, ready.mqttUrl, topicPrefix);
    const last = ids[ids.length - 1]!;
    const reconnectOps = await counted(channel, async () => {
      await device.start();
      cleanup.push(() => device.stop({ graceful: false }));
      await until(async () => statuses.get(last) === "SUCCEEDED", 30_000, "the last setpoint did not succeed");
    });
    const supersedingTotal = totalOps(supersedingOps);
    const plainPerSend = totalOps(plainOps) / n;
    const result = {
      commands: n,
      superseded,
      storeOps: { supersedingSends: supersedingOps, plainSends: plainOps, reconnectUntilLastSucceeded: reconnectOps },
      storeOpsPerSupersedingSend: round(supersedingTotal / n),
      storeOpsPerPlainSend: round(plainPerSend),
      storeOpsPerSupersededCommand: round((supersedingTotal - plainPerSend * n) / superseded),
      measures:
        "the gateway's store commands while N setpoints are sent one after another to an offline thermostat, less those of N device.reboot sends (which supersede nothing) to another, per superseded command",
      node: process.version,
      loadAverage: { start: loadAtStart, end: loadavg().map((x) => round(x)) },
      at: new Date().toISOString(),
    };
    const text = JSON.stringify(result, null, 2);
    console.log(text);
    if (values.out) {
      mkdirSync(dirname(resolve(values.out)), { recursive: true });
      writeFileSync(resolve(values.out), `${text}\n`);
    }
  } finally {
    while (cleanup.length) await cleanup.pop()!().catch((error: Error) => console.error(`cleanup: ${error.message}`));
  }
}

/** The gateway's store commands issued while `work` runs. */
async function counted(channel: ChildChannel, work: () => Promise<void>): Promise<StoreOpCounts> {
  const before = await channel.request<StoreOpCounts>({ kind: "storeOps" });
  await work();
  return opsBetween(before, await channel.request<StoreOpCounts>({ kind: "storeOps" }));
}

async function until(check: () => Promise<boolean>, timeoutMs: number, failure = "timed out"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(failure);
    await new Promise((resolveWait) => setTimeout(resolveWait, 20));
  }
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    console.error(`superseding bench failed: ${error.message}`);
    process.exit(1);
  },
);
