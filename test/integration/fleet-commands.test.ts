import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Command } from "../../src/commands/command";
import type { DeviceClient } from "../../src/device-sdk";
import {
  CancelFleetCommandDocument,
  CreateFleetCommandDocument,
  FleetChildDocument,
  FleetCommandDocument,
  FleetCommandsDocument,
  FleetCommandUpdatedDocument,
  PauseFleetCommandDocument,
  PreviewFleetTargetsDocument,
  ResumeFleetCommandDocument,
  type FleetCommandFieldsFragment,
  type FleetCommandInput,
  type FleetCommandStatus,
} from "../generated/graphql";
import { startTestGateway, type TestGateway } from "../kit/gateway";
import type { GraphQLTestClient } from "../kit/graphql-client";
import { uniqueName } from "../kit/store";
import { waitUntil } from "../kit/wait";

const SET_TEMPERATURE = "thermostat.setTemperature";

const count = (fleet: Pick<FleetCommandFieldsFragment, "counts">, status: string) => fleet.counts.find((c) => c.status === status)?.count ?? 0;

/** The most children created within any window of `windowMs`, from the creation times the store recorded. */
function mostWithin(children: Command[], windowMs: number): number {
  const times = children.map((c) => c.createdAt.getTime()).sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= windowMs) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

describe("fleet commands", () => {
  let kit: TestGateway;
  let admin: GraphQLTestClient;
  before(async () => {
    kit = await startTestGateway();
    admin = await kit.as("admin");
  });
  after(() => kit.stop());

  const children = (fleetCommandId: string) =>
    kit.gateway.repositories.commands.collection
      .find({ fleetCommandId })
      .toArray()
      .then((docs) => docs.map(({ _id, ...rest }) => ({ id: _id, ...rest }) as Command));
  const childCount = (fleetCommandId: string) => kit.gateway.repositories.commands.count({ fleetCommandId });

  async function fleetOf(client: GraphQLTestClient, id: string) {
    const { fleetCommand } = await client.data(FleetCommandDocument, { id });
    assert.ok(fleetCommand, `fleet command ${id}`);
    return fleetCommand;
  }

  async function waitForFleet(client: GraphQLTestClient, id: string, statuses: FleetCommandStatus[], timeoutMs = 60_000) {
    let last: FleetCommandFieldsFragment | undefined;
    await waitUntil(`fleet command ${id} ${statuses.join(" or ")} (last: ${JSON.stringify(last)})`, async () => statuses.includes((last = await fleetOf(client, id)).status), timeoutMs);
    return last!;
  }

  /** `n` thermostats of one site named so that their id order is their index order. */
  async function thermostats(prefix: string, n: number, options: (i: number) => { connect?: boolean; failRate?: number } = () => ({})) {
    const devices: DeviceClient[] = [];
    for (let i = 0; i < n; i++) devices.push(await kit.device(`${prefix}-${String(i).padStart(3, "0")}`, "thermostat", { site: prefix, ...options(i) }));
    return devices;
  }

  const input = (site: string, extra: Partial<FleetCommandInput> = {}): FleetCommandInput => ({
    name: `setpoint ${site}`,
    target: { site },
    type: SET_TEMPERATURE,
    payload: { celsius: 19 },
    ...extra,
  });

  it("starts every child once, evenly paced: no window holds more than the rate allows", async () => {
    const site = uniqueName("rate-");
    const devices = await thermostats(site, 60);
    const rate = 900; // one start every 66.7 ms: 60 children in about 4 s
    const { createFleetCommand: created } = await admin.data(CreateFleetCommandDocument, { input: input(site, { rollout: { maxPerMinute: rate } }) });
    assert.equal(created.status, "RUNNING");
    assert.equal(created.targeted, 60);
    assert.equal(created.skipped, 0);
    const done = await waitForFleet(admin, created.id, ["COMPLETED"]);
    assert.equal(count(done, "SUCCEEDED"), 60);
    assert.ok(done.finishedAt);

    const started = await children(created.id);
    assert.equal(started.length, 60);
    assert.deepEqual(devices.map((d) => d.received), devices.map(() => 1), "every device ran the command exactly once");
    // A start is never early, and at most a wave (100 ms, README Rollout) late: late ones bunch up by that much.
    const waveMs = 100;
    for (const windowMs of [1000, 2000, 3000]) {
      const allowed = Math.ceil((rate * (windowMs + waveMs)) / 60_000) + 1;
      assert.ok(mostWithin(started, windowMs) <= allowed, `at most ${allowed} starts in ${windowMs} ms, saw ${mostWithin(started, windowMs)}`);
    }
    // Evenly paced, not all at once: the starts span most of the time the rate implies.
    const times = started.map((c) => c.createdAt.getTime());
    assert.ok(Math.max(...times) - Math.min(...times) >= 0.8 * 59 * (60_000 / rate));

    const { command: child } = await admin.data(FleetChildDocument, { id: started[0]!.id });
    assert.equal(child?.fleetCommandId, created.id);
    assert.equal(child?.source, "OPERATOR");
    assert.equal(child?.issuedBy, "admin-user");
  });

  it("aborts once enough children failed, cancels the QUEUED ones, starts no more and raises a FAILED alert naming it", async () => {
    const site = uniqueName("abort-");
    // 0–4 offline (their children stay QUEUED); of the others every fifth fails: 20 %.
    const devices = await thermostats(site, 60, (i) => ({ connect: i >= 5, failRate: i % 5 === 4 ? 1 : 0 }));
    const { createFleetCommand: created } = await admin.data(CreateFleetCommandDocument, {
      // Slow enough that children finish long before all have started, even on a loaded machine.
      input: input(site, { rollout: { maxPerMinute: 300 }, abort: { failurePercent: 10, minCompleted: 20 } }),
    });
    const aborted = await waitForFleet(admin, created.id, ["ABORTED", "COMPLETED"]);
    assert.equal(aborted.status, "ABORTED");
    // The reason gives the finished children the abort was decided on; children already sent may finish after it.
    const reason = /^(\d+) of (\d+) finished children FAILED, TIMED_OUT or EXPIRED/.exec(aborted.abortReason ?? "");
    assert.ok(reason, `abortReason: ${aborted.abortReason}`);
    const [failing, finished] = [Number(reason[1]), Number(reason[2])];
    assert.ok(finished >= 20 && finished <= 40, `finished children when aborted: ${finished}`);
    assert.ok(failing * 100 >= 10 * finished, `failing share when aborted: ${failing} of ${finished}`);
    assert.ok(count(aborted, "SUCCEEDED") + count(aborted, "FAILED") >= finished);

    const offline = devices.slice(0, 5).map((d) => d.deviceId);
    let offlineChildren: string[] = [];
    await waitUntil("the QUEUED children canceled", async () => {
      const queued = (await children(created.id)).filter((c) => offline.includes(c.deviceId));
      offlineChildren = queued.map((c) => `${c.deviceId} ${c.status}`);
      return queued.length === 5 && queued.every((c) => c.status === "CANCELED");
    }).catch((error: Error) => assert.fail(`${error.message}: ${offlineChildren.join(", ")}`));
    const startedWhenAborted = await childCount(created.id);
    const all = await children(created.id);
    const abortedAt = new Date(aborted.finishedAt!).getTime();
    // One send may have been under way when it aborted; none begins later.
    assert.ok(all.filter((c) => c.createdAt.getTime() > abortedAt).length <= 1, "children started after the abort");
    assert.ok(startedWhenAborted < 60, `children started: ${startedWhenAborted}`);
    const alert = await kit.gateway.repositories.alerts.collection.findOne({ _id: `fleet:${created.id}:ABORTED` });
    assert.ok(alert, "an alert for the abort");
    assert.equal(alert.kind, "FAILED");
    assert.ok(alert.message.includes(created.id));
    // Nothing more starts: the rollout would have started another 15 in 3 s at this rate.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    assert.equal(await childCount(created.id), startedWhenAborted);
  });

  it("pause stops new starts; resume continues until every device ran it once", async () => {
    const site = uniqueName("pause-");
    const devices = await thermostats(site, 30);
    // Slow enough that the pause lands long before all 30 have started, even on a loaded machine.
    const rate = 120;
    const { createFleetCommand: created } = await admin.data(CreateFleetCommandDocument, { input: input(site, { rollout: { maxPerMinute: rate } }) });
    await waitUntil("some children started", async () => (await childCount(created.id)) >= 3);
    const { pauseFleetCommand: paused } = await admin.data(PauseFleetCommandDocument, { id: created.id });
    assert.equal(paused.status, "PAUSED");
    assert.equal(await admin.errorCode(PauseFleetCommandDocument, { id: created.id }), "CONFLICT");
    const atPause = await childCount(created.id);
    // Ten intervals of the rate: the property under test is that no start happens in them (one in flight at most).
    await new Promise((resolve) => setTimeout(resolve, 10 * (60_000 / rate)));
    const later = await childCount(created.id);
    assert.ok(later <= atPause + 1, `started while paused: ${later - atPause}`);
    assert.ok(later < 30);

    const { resumeFleetCommand: resumed } = await admin.data(ResumeFleetCommandDocument, { id: created.id });
    assert.equal(resumed.status, "RUNNING");
    const done = await waitForFleet(admin, created.id, ["COMPLETED"]);
    assert.equal(count(done, "SUCCEEDED"), 30);
    assert.deepEqual(devices.map((d) => d.received), devices.map(() => 1));
  });

  it("a scheduled fleet command stays SCHEDULED until startAt and starts then", async () => {
    const site = uniqueName("sched-");
    await thermostats(site, 3);
    const startAt = new Date(Date.now() + 2500);
    const subscription = await admin.subscribe(FleetCommandUpdatedDocument, {});
    try {
      const { createFleetCommand: created } = await admin.data(CreateFleetCommandDocument, { input: input(site, { startAt: startAt.toISOString() }) });
      assert.equal(created.status, "SCHEDULED");
      assert.equal(created.startedAt, null);
      assert.equal(await childCount(created.id), 0);
      const running = await subscription.waitFor((u) => u.fleetCommandUpdated.id === created.id && u.fleetCommandUpdated.status !== "SCHEDULED", 20_000);
      assert.ok(new Date(running.fleetCommandUpdated.startedAt!).getTime() >= startAt.getTime());
      assert.equal(running.fleetCommandUpdated.targeted, 3);
      const done = await waitForFleet(admin, created.id, ["COMPLETED"]);
      assert.equal(count(done, "SUCCEEDED"), 3);
      for (const child of await children(created.id)) assert.ok(child.createdAt.getTime() >= startAt.getTime(), "no child before startAt");
    } finally {
      await subscription.close();
    }
  });

  it("an operator of plant-1 targeting the whole tenant gets plant-2's devices (and a model that does not take the type) skipped", async () => {
    const tenant = uniqueName("fleet-tenant-");
    const registrar = { kind: "user" as const, id: "kit", tenant, roles: ["admin" as const] };
    const register = (id: string, site: string, model: string) => kit.gateway.services.devices.register(registrar, { id, site, model });
    await register(uniqueName("p1-th-a-"), "plant-1", "thermostat");
    await register(uniqueName("p1-th-b-"), "plant-1", "thermostat");
    const valve = await register(uniqueName("p1-valve-"), "plant-1", "valve");
    const p2 = [await register(uniqueName("p2-th-a-"), "plant-2", "thermostat"), await register(uniqueName("p2-th-b-"), "plant-2", "thermostat")];
    const operator = await kit.as("operator", { tenant, sites: ["plant-1"], sub: "op-plant-1" });

    // The preview is the same resolution as creation, and stores nothing.
    const { previewFleetTargets: preview } = await operator.data(PreviewFleetTargetsDocument, { target: {}, type: SET_TEMPERATURE, payload: { celsius: 21 } });
    assert.deepEqual([preview.targeted, preview.sendable, preview.skipped], [5, 2, 3]);
    assert.equal((await operator.data(FleetCommandsDocument, {})).fleetCommands.edges.length, 0, "a preview creates no fleet command");
    const viewerPreview = await (await kit.as("viewer", { tenant })).errorCode(PreviewFleetTargetsDocument, { target: {}, type: SET_TEMPERATURE, payload: { celsius: 21 } });
    assert.equal(viewerPreview, "FORBIDDEN");
    assert.equal(await operator.errorCode(PreviewFleetTargetsDocument, { target: {}, type: SET_TEMPERATURE, payload: { celsius: 99 } }), "BAD_USER_INPUT");

    const { createFleetCommand: created } = await operator.data(CreateFleetCommandDocument, {
      input: { name: "whole tenant", target: {}, type: SET_TEMPERATURE, payload: { celsius: 21 } },
    });
    assert.equal(created.targeted, 5);
    assert.equal(created.skipped, 3);
    const reasons = new Map(created.skippedDevices.map((s) => [s.deviceId, s.reason]));
    assert.deepEqual(preview.skippedDevices, created.skippedDevices, "the preview skipped the same devices for the same reasons");
    for (const device of p2) assert.match(reasons.get(device.id) ?? "", /^FORBIDDEN/);
    assert.match(reasons.get(valve.id) ?? "", /^MODEL/);
    await waitUntil("both plant-1 thermostats have a child", async () => (await childCount(created.id)) === 2);
    const sent = await children(created.id);
    assert.deepEqual(sent.map((c) => c.deviceId).sort(), [...preview.deviceIds].sort(), "the devices sent to are the preview's");
    assert.ok(sent.every((c) => c.site === "plant-1" && c.issuedBy === "op-plant-1" && c.tenant === tenant));

    // A viewer may not create one; another tenant does not see it; the operator cancels its own.
    const viewer = await kit.as("viewer", { tenant });
    assert.equal(await viewer.errorCode(CreateFleetCommandDocument, { input: { name: "x", target: {}, type: SET_TEMPERATURE, payload: { celsius: 21 } } }), "FORBIDDEN");
    assert.equal((await admin.data(FleetCommandDocument, { id: created.id })).fleetCommand, null);
    const { cancelFleetCommand: canceled } = await operator.data(CancelFleetCommandDocument, { id: created.id });
    assert.equal(canceled.status, "CANCELED");
    // The devices are offline: their QUEUED children are canceled with it.
    await waitUntil("children canceled", async () => (await children(created.id)).every((c) => c.status === "CANCELED"));
  });

  it("idempotencyKey: the same input gives the same fleet command, another input a CONFLICT; lists are newest first; bad input is refused", async () => {
    const site = uniqueName("idem-");
    await thermostats(site, 2, () => ({ connect: false }));
    const key = uniqueName("k-");
    const first = (await admin.data(CreateFleetCommandDocument, { input: input(site, { idempotencyKey: key }) })).createFleetCommand;
    const again = (await admin.data(CreateFleetCommandDocument, { input: input(site, { idempotencyKey: key }) })).createFleetCommand;
    assert.equal(again.id, first.id);
    assert.equal(await admin.errorCode(CreateFleetCommandDocument, { input: input(site, { idempotencyKey: key, payload: { celsius: 20 } }) }), "CONFLICT");
    const second = (await admin.data(CreateFleetCommandDocument, { input: input(site) })).createFleetCommand;
    const { fleetCommands } = await admin.data(FleetCommandsDocument, { first: 2 });
    assert.deepEqual(fleetCommands.edges.map((e) => e.node.id), [second.id, first.id]);

    for (const [bad, field] of [
      [{ rollout: { maxPerMinute: 0 } }, "rollout.maxPerMinute"],
      [{ rollout: { maxPerMinute: 100_001 } }, "rollout.maxPerMinute"],
      [{ abort: { failurePercent: 0, minCompleted: 5 } }, "abort.failurePercent"],
      [{ payload: { celsius: 99 } }, "payload"],
      [{ type: "no.such" }, "type"],
    ] as const) {
      const response = await admin.request(CreateFleetCommandDocument, { input: input(site, bad as Partial<FleetCommandInput>) });
      assert.equal(response.errors?.[0]?.extensions?.code, "BAD_USER_INPUT", JSON.stringify(bad));
      assert.equal(response.errors?.[0]?.extensions?.field, field);
    }
    // Clean-up. The second fleet command's setpoints supersede the first's queued ones, so the first may
    // have COMPLETED already (all its children final): then there is nothing to cancel.
    for (const id of [first.id, second.id]) {
      const response = await admin.request(CancelFleetCommandDocument, { id });
      if (response.errors) assert.equal(response.errors[0]?.extensions?.code, "CONFLICT", JSON.stringify(response.errors));
    }
  });
});
