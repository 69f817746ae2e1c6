/**
 * `npm run bench:rules [-- --broker aedes|mosquitto --devices N --messages N --window N --max-ahead N]`: how many telemetry
 * messages per second one gateway evaluates against 100 enabled rules of the devices' tenant.
 *
 * Devices publish over MQTT (QoS 1); the figure is messages evaluated by the gateway (parsed, device
 * looked up, matched against every rule, matching rules fired or passed over in cooldown) per second of
 * wall time, read from its /metrics: messages it dropped or failed on are handled but not evaluated,
 * so they are subtracted. Devices, the gateway and (with aedes) the broker share this process,
 * so the end-to-end figure is a lower bound. A second figure is the matching alone: JSON.parse plus the
 * 100 compiled conditions, in a loop.
 */
import { parseArgs } from "node:util";
import { compileCondition } from "../src/automation/condition";
import type { CreateRuleRequest } from "../src/automation/rule-service";
import type { Principal } from "../src/authz/principal";
import type { DeviceClient } from "../src/device-sdk";
import { startTestGateway } from "../test/kit/gateway";
import { readMetric, waitForMetric } from "../test/kit/metrics";
import { stopTestStore, uniqueName } from "../test/kit/store";

const RULES = 100;
const HANDLED = "gateway_telemetry_messages_total";
/** Handled but not evaluated (malformed, unregistered device, failed …): never counted as throughput. */
const DROPPED = "gateway_telemetry_dropped_total";
const SITES = ["north", "south", "east", "west"];

/** 100 rules of the shapes a tenant writes; 5 match the readings below (and then sit in their cooldown). */
function rules(): CreateRuleRequest[] {
  const made: CreateRuleRequest[] = [];
  const reboot = { commandType: "device.reboot", commandPayload: {} };
  for (let i = 0; made.length < RULES; i++) {
    const site = SITES[i % SITES.length];
    const shapes: Array<Omit<CreateRuleRequest, "name" | "commandType">> = [
      { site, when: { temperature: { $gt: 60 + (i % 20) } } },
      { model: "thermostat", when: { $and: [{ humidity: { $gte: 10 } }, { status: { $in: ["fault", "alarm", "overheat"] } }] } },
      { when: { "probe.pressure": { $lt: -i } } },
      { site, when: { firmware: { $regex: `^9\\.${i % 10}\\.` } } },
      { when: { $or: [{ alarm: true }, { temperature: { $lt: -40 } }] } },
    ];
    made.push({ name: `rule ${made.length}`, ...reboot, ...shapes[i % shapes.length]! });
    if (made.length % 20 === 19) made.push({ name: `hot ${made.length}`, ...reboot, when: { temperature: { $gt: 20 } }, cooldownSeconds: 86_400 });
  }
  return made.slice(0, RULES);
}

const reading = (i: number) => ({
  temperature: 21 + (i % 7) / 10,
  humidity: 40 + (i % 11),
  status: "ok",
  firmware: "1.4.2",
  probe: { pressure: 2.5, flow: 10 + (i % 3) },
  seq: i,
});

/**
 * Publishes `perDevice` readings from every device, `window` at a time per device, and never more than
 * `maxAhead` beyond what the gateway has handled: a broker drops what a slow subscriber cannot take
 * (Mosquitto's max_queued_messages), which would measure the broker rather than the gateway.
 */
async function publishAll(url: string, devices: DeviceClient[], perDevice: number, window: number, maxAhead: number): Promise<void> {
  const start = await readMetric(url, HANDLED);
  let published = 0;
  let handled = 0;
  let done = false;
  const poller = (async () => {
    while (!done) {
      handled = (await readMetric(url, HANDLED)) - start;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  await Promise.all(
    devices.map(async (device) => {
      for (let sent = 0; sent < perDevice; sent += window) {
        while (published - handled >= maxAhead) await new Promise((resolve) => setTimeout(resolve, 5));
        const batch = Math.min(window, perDevice - sent);
        published += batch;
        await Promise.all(Array.from({ length: batch }, (_, k) => device.publishTelemetry(reading(sent + k))));
      }
    }),
  );
  done = true;
  await poller;
}

function matchingOnly(conditions: Array<(telemetry: Record<string, unknown>) => boolean>): number {
  const payloads = Array.from({ length: 100 }, (_, i) => Buffer.from(JSON.stringify(reading(i))));
  const started = process.hrtime.bigint();
  let messages = 0;
  while (process.hrtime.bigint() - started < 2_000_000_000n) {
    for (const payload of payloads) {
      const telemetry = JSON.parse(payload.toString("utf8")) as Record<string, unknown>;
      for (const matches of conditions) matches(telemetry);
      messages++;
    }
  }
  return messages / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      broker: { type: "string", default: "aedes" },
      devices: { type: "string", default: "20" },
      messages: { type: "string", default: "40000" },
      window: { type: "string", default: "50" },
      "max-ahead": { type: "string" },
    },
  });
  if (values.broker !== "aedes" && values.broker !== "mosquitto") throw new Error("--broker must be aedes or mosquitto");
  const deviceCount = Number(values.devices);
  const perDevice = Math.ceil(Number(values.messages) / deviceCount);
  const total = perDevice * deviceCount;
  const window = Number(values.window);
  // Mosquitto keeps 20 QoS 1 messages in flight to a client and drops beyond its queue: stay well below.
  const maxAhead = Number(values["max-ahead"] ?? (values.broker === "mosquitto" ? 200 : 1000));

  // Each bench device publishes far above a real one's rate (the embedded broker's per-device bound).
  const kit = await startTestGateway({ broker: values.broker, env: { MQTT_CLIENT_MESSAGES_PER_SECOND: "1000000" } });
  try {
    const admin: Principal = { kind: "user", id: "bench-admin", tenant: kit.tenant, roles: ["admin"] };
    const created = rules();
    for (const rule of created) await kit.gateway.services.rules.create(admin, rule);
    const devices: DeviceClient[] = [];
    for (let i = 0; i < deviceCount; i++) devices.push(await kit.device(uniqueName(`bench-${i}-`), "thermostat", { site: SITES[i % SITES.length] }));

    // Warm-up: rule and device caches loaded, the matching rules fired once per device.
    await publishAll(kit.url, devices, 20, window, maxAhead);
    await waitForMetric(kit.url, HANDLED, 20 * deviceCount, {}, 60_000);

    const before = await readMetric(kit.url, HANDLED);
    const droppedBefore = await readMetric(kit.url, DROPPED);
    const started = process.hrtime.bigint();
    await publishAll(kit.url, devices, perDevice, window, maxAhead);
    await waitForMetric(kit.url, HANDLED, before + total, {}, 60_000);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;

    const dropped = (await readMetric(kit.url, DROPPED)) - droppedBefore;
    const evaluated = total - dropped;
    const sent = await readMetric(kit.url, "gateway_rule_firings_total", { outcome: "sent" });
    const cooldown = await readMetric(kit.url, "gateway_rule_firings_total", { outcome: "cooldown" });
    const matching = matchingOnly(created.map((r) => compileCondition(r.when)));

    console.log(
      `telemetry against ${RULES} rules, ${deviceCount} devices, ${total} messages over ${values.broker} (QoS 1, ${window} in flight per device, at most ${maxAhead} ahead of the gateway)`,
    );
    console.log(`  end to end: ${Math.round(evaluated / seconds)} messages evaluated/s (${evaluated} of ${total} in ${seconds.toFixed(2)} s)`);
    console.log(`  firings: ${sent} sent, ${cooldown} passed over in cooldown; dropped or failed (not counted above): ${dropped}`);
    console.log(`  matching alone (JSON.parse + ${RULES} conditions): ${Math.round(matching)} messages/s`);
  } finally {
    await kit.stop();
    await stopTestStore();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
