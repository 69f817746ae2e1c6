import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MongoClient, type Db } from "mongodb";
import { systemClock } from "../../src/clock";
import { ActiveCommands } from "../../src/commands/active-commands";
import type { Command } from "../../src/commands/command";
import { CommandLifecycle } from "../../src/commands/lifecycle";
import { canTransition, targetOf } from "../../src/commands/state-machine";
import { Metrics } from "../../src/observability/metrics";
import { CommandRepository } from "../../src/store/command-repository";
import { testStoreUri, uniqueName } from "../kit/store";

/** One replica's command memory and lifecycle on the shared store. */
interface Replica {
  active: ActiveCommands;
  lifecycle: CommandLifecycle;
}

/**
 * Two replicas' lifecycles on the real store, the second fed the first's announcements as the event bus
 * would. A write that stores several steps at once (SENT and the final reply within SENT's wait) is
 * announced step by step; a replica that decides on an earlier step's copy must not write over the later
 * steps (the replica soak saw SUCCEEDED followed by a duplicate DELIVERED, then TIMED_OUT).
 */
describe("command lifecycle across replicas", () => {
  let client: MongoClient;
  let db: Db;
  let writer: Replica;
  let other: Replica;
  /** What the writer announced, in order, as the other replica received it. */
  const announced: Command[] = [];

  const replica = (): Replica => {
    const active = new ActiveCommands();
    return { active, lifecycle: new CommandLifecycle(new CommandRepository(db), active, systemClock, new Metrics()) };
  };
  const event = (actor: string) => () => ({ event: { at: new Date(), actor } });
  const stored = async (id: string) => (await new CommandRepository(db).findById(id))!;

  before(async () => {
    client = await new MongoClient(await testStoreUri(), { serverSelectionTimeoutMS: 10_000 }).connect();
    db = client.db(uniqueName("lifecycle_replicas_"));
    writer = replica();
    other = replica();
    writer.lifecycle.onTransition((command) => announced.push(command));
  });

  after(async () => {
    await db.dropDatabase().catch(() => undefined);
    await client.close();
  });

  /** A device reply's decision: the state machine's, as `apply` makes it, with the reply ingest's `reply` option. */
  const reply = (name: "deviceSucceeded") => (current: Command) =>
    canTransition(current.status, name) ? { steps: [{ change: name, event: { status: targetOf(name), at: new Date(), actor: "device:d" } }] } : { refused: "not_allowed_in_state" };

  /** A new QUEUED command both replicas know, sent by the writer: SENT waits for the final reply, which joins its write. */
  async function sentAndSucceededInOneWrite() {
    const now = new Date();
    const command: Command = {
      id: uniqueName("cmd-"),
      v: 0,
      tenant: "t",
      site: "s",
      deviceId: uniqueName("dev-"),
      type: "thermostat.setTemperature",
      payload: { celsius: 20 },
      status: "QUEUED",
      source: "OPERATOR",
      issuedBy: "test",
      attempt: 1,
      timeoutSeconds: 30,
      createdAt: now,
      updatedAt: now,
      history: [{ status: "QUEUED", at: now, actor: "test" }],
    };
    assert.equal(await new CommandRepository(db).insert(command), true);
    for (const { active } of [writer, other]) active.observe(command);
    announced.length = 0;
    const [sentOutcome] = await Promise.all([
      writer.lifecycle.apply(command.id, "publishAcked", event("gateway"), undefined, { lingerMs: 60_000 }),
      writer.lifecycle.submit(command.id, reply("deviceSucceeded"), undefined, { reply: "final" }),
    ]);
    const written = await stored(command.id);
    assert.deepEqual(written.history.map((h) => h.status), ["QUEUED", "SENT", "SUCCEEDED"]);
    assert.equal(written.v, 1, "SENT and SUCCEEDED were one write");
    assert.deepEqual(announced.map((c) => c.status), ["SENT", "SUCCEEDED"], "announced step by step");
    assert.equal(sentOutcome?.status, "SENT", "SENT's caller gets SENT");
    return { id: command.id, sentStep: announced[0]!, sentOutcome: sentOutcome! };
  }

  /** The command as stored, and only those three steps in its history. */
  async function assertStillSucceeded(id: string) {
    const after = await stored(id);
    assert.equal(after.status, "SUCCEEDED");
    assert.deepEqual(after.history.map((h) => h.status), ["QUEUED", "SENT", "SUCCEEDED"]);
  }

  it("a duplicate DELIVERED decided on the SENT step's copy, while the other replica has seen only that step, is refused", async () => {
    const { id, sentStep } = await sentAndSucceededInOneWrite();
    other.active.observe(sentStep);
    assert.equal(await other.lifecycle.apply(id, "deviceDelivered", event("device:d")), null);
    await assertStillSucceeded(id);
  });

  it("a duplicate DELIVERED judged on the SENT step's copy and written after the final step arrived is refused", async () => {
    const { id, sentStep } = await sentAndSucceededInOneWrite();
    for (const command of announced) other.active.observe(command);
    assert.equal(other.active.get(id), undefined, "SUCCEEDED: no longer active on the other replica");
    // The reply ingest hands the copy it judged the reply on to the lifecycle as `known`.
    assert.equal(await other.lifecycle.apply(id, "deviceDelivered", event("device:d"), sentStep), null);
    await assertStillSucceeded(id);
  });

  it("a change decided on the state an earlier step's caller got is refused too", async () => {
    const { id, sentOutcome } = await sentAndSucceededInOneWrite();
    // A replica with nothing in memory decides on what it is handed.
    assert.equal(await replica().lifecycle.apply(id, "deviceDelivered", event("device:d"), sentOutcome), null);
    await assertStillSucceeded(id);
  });
});
