import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MongoClient, type Collection } from "mongodb";
import { GroupedInserts } from "../../src/store/grouped-inserts";
import { testStoreUri, uniqueName } from "../kit/store";

interface Doc {
  _id: string;
  n: number;
}

/** Group-committed inserts on the real store: what each caller is told, what is stored, and how many store commands it took. */
describe("grouped inserts", () => {
  let client: MongoClient;
  let collection: Collection<Doc>;
  let inserts: GroupedInserts<Doc>;
  const insertCommands: number[] = [];

  before(async () => {
    client = await new MongoClient(await testStoreUri(), { monitorCommands: true, serverSelectionTimeoutMS: 10_000 }).connect();
    collection = client.db(uniqueName("grouped_inserts_")).collection<Doc>("docs");
    client.on("commandStarted", (event) => {
      if (event.commandName === "insert") insertCommands.push((event.command.documents as unknown[]).length);
    });
    inserts = new GroupedInserts(collection);
  });

  after(async () => {
    await collection.drop().catch(() => undefined);
    await client.close();
  });

  it("stores inserts asked for together, or while a group is in flight, as one command each, telling each caller whether its id was new", async () => {
    await collection.insertOne({ _id: "taken", n: -1 });
    insertCommands.length = 0;
    const together = ["taken", ...Array.from({ length: 8 }, (_, i) => `first-${i}`), "twice", "twice"];
    const meanwhile = Array.from({ length: 6 }, (_, i) => `second-${i}`).concat("first-0");
    const firstSent = new Promise<void>((resolve) => client.once("commandStarted", () => resolve()));
    const firstResults = Promise.all(together.map((id, n) => inserts.insert({ _id: id, n })));
    await firstSent;
    const secondResults = Promise.all(meanwhile.map((id, n) => inserts.insert({ _id: id, n: 100 + n })));

    assert.deepEqual(await firstResults, together.map((id, n) => id !== "taken" && together.indexOf(id) === n));
    assert.deepEqual(await secondResults, meanwhile.map((id) => id !== "first-0"));
    assert.deepEqual(insertCommands, [together.length, meanwhile.length], "one store command for each group");
    const stored = await collection.find({}).toArray();
    assert.equal(stored.length, new Set([...together, ...meanwhile]).size, "each id once");
    assert.deepEqual(stored.find((doc) => doc._id === "taken"), { _id: "taken", n: -1 }, "a taken id keeps its document");
    assert.deepEqual(stored.find((doc) => doc._id === "twice"), { _id: "twice", n: together.indexOf("twice") }, "the first of two with one id wins");
    assert.deepEqual(stored.find((doc) => doc._id === "first-0"), { _id: "first-0", n: 1 });
  });

  it("goes at once when nothing is in flight", async () => {
    insertCommands.length = 0;
    assert.equal(await inserts.insert({ _id: "alone", n: 0 }), true);
    assert.equal(await inserts.insert({ _id: "alone", n: 1 }), false);
    assert.deepEqual(insertCommands, [1, 1]);
  });
});
