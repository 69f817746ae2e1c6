import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { after, before, describe, it } from "node:test";
import { MongoClient } from "mongodb";
import type { Collection } from "mongodb";
import { ensureStoreBinaries } from "../../src/embedded/ferretdb-binary";
import { startEmbeddedStore } from "../../src/embedded/ferretdb";
import { createLogger } from "../../src/logger";
import { processesMentioning } from "../kit/process-groups";

const log = createLogger(process.env.LOG_LEVEL ?? "silent");
const linuxOnly = process.platform !== "linux" ? "reads /proc to find leftover processes" : false;

describe("embedded store (FerretDB)", { skip: linuxOnly }, () => {
  const tmpDirs: string[] = [];
  const newDataDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "embedded-store-test-"));
    tmpDirs.push(dir);
    return dir;
  };

  // A first run may have to build FerretDB (CI builds it beforehand with `npm run ferretdb:build`).
  before(() => ensureStoreBinaries(log), { timeout: 300_000 });
  after(() => {
    for (const dir of tmpDirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("stores documents that survive a restart on the same data directory, and leaves no process behind", async () => {
    const dataDir = newDataDir();
    const first = await startEmbeddedStore({ dataDir, log });
    const port = Number(new URL(first.uri).port);
    await withCollection(first.uri, async (devices) => {
      await devices.insertOne({ _id: "d1", site: "s1", model: "thermostat" });
      assert.deepEqual(await devices.findOne({ _id: "d1" }), { _id: "d1", site: "s1", model: "thermostat" });
    });
    assert.notEqual(processesMentioning(dataDir).length, 0, "the running store should be visible in /proc");
    await first.stop();
    assert.deepEqual(processesMentioning(dataDir), []);
    assert.equal(await accepts(port), false, "the stopped store still accepts connections");
    assert.equal(fs.existsSync(path.join(dataDir, "ferretdb.lock")), false);

    const second = await startEmbeddedStore({ dataDir, log });
    try {
      await withCollection(second.uri, async (devices) => {
        assert.deepEqual(await devices.findOne({ _id: "d1" }), { _id: "d1", site: "s1", model: "thermostat" });
      });
    } finally {
      await second.stop();
    }
    assert.deepEqual(processesMentioning(dataDir), []);
  });

  it("refuses a data directory that a running store uses", async () => {
    const dataDir = newDataDir();
    const running = await startEmbeddedStore({ dataDir, log });
    try {
      await assert.rejects(startEmbeddedStore({ dataDir, log }), /already used by an embedded store/);
      // The refused attempt must not have disturbed the running one.
      await withCollection(running.uri, (devices) => devices.insertOne({ _id: "still-works" }));
    } finally {
      await running.stop();
    }
  });

  it("does not outlive a parent that is killed with SIGKILL", async () => {
    const dataDir = newDataDir();
    const parent = startStoreInChildProcess(dataDir);
    try {
      const uri = await readyUri(parent);
      assert.notEqual(processesMentioning(dataDir).length, 0, "the store should run while its parent does");
      parent.kill("SIGKILL");
      const deadline = Date.now() + 10_000;
      while (processesMentioning(dataDir).length > 0 && Date.now() < deadline) await sleep(50);
      assert.deepEqual(processesMentioning(dataDir), [], "FerretDB outlived its parent");
      assert.equal(await accepts(Number(new URL(uri).port)), false);
    } finally {
      parent.kill("SIGKILL");
    }

    // The dead parent's lock is stale: a new store takes the directory over, with the parent's data.
    const next = await startEmbeddedStore({ dataDir, log });
    try {
      await withCollection(next.uri, async (devices) => assert.equal(await devices.countDocuments({ _id: "from-child" }), 1));
    } finally {
      await next.stop();
    }
  });
});

type DeviceDoc = { _id: string } & Record<string, unknown>;

async function withCollection<T>(uri: string, use: (devices: Collection<DeviceDoc>) => Promise<T>): Promise<T> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
  try {
    await client.connect();
    return await use(client.db("embedded_store_test").collection<DeviceDoc>("devices"));
  } finally {
    await client.close();
  }
}

/** A separate Node process that starts a store, writes a document and waits to be killed. */
function startStoreInChildProcess(dataDir: string): ChildProcess {
  const modules = {
    store: path.resolve(__dirname, "../../src/embedded/ferretdb.js"),
    logger: path.resolve(__dirname, "../../src/logger.js"),
  };
  const script = `
    const { startEmbeddedStore } = require(${JSON.stringify(modules.store)});
    const { createLogger } = require(${JSON.stringify(modules.logger)});
    const { MongoClient } = require("mongodb");
    (async () => {
      const store = await startEmbeddedStore({ dataDir: process.env.STORE_DIR, log: createLogger("silent") });
      const client = await new MongoClient(store.uri).connect();
      await client.db("embedded_store_test").collection("devices").insertOne({ _id: "from-child" });
      await client.close();
      process.stdout.write("READY " + store.uri + "\\n");
      setInterval(() => {}, 60000);
    })().catch((err) => { console.error(err); process.exit(1); });
  `;
  // The directory goes in the environment, not argv, so the parent itself does not match processesMentioning().
  return spawn(process.execPath, ["-e", script], {
    cwd: path.resolve(__dirname, "../../.."),
    env: { ...process.env, STORE_DIR: dataDir },
    stdio: ["ignore", "pipe", "inherit"],
  });
}

function readyUri(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("child store not ready within 20 s")), 20_000);
    readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      if (!line.startsWith("READY ")) return;
      clearTimeout(timer);
      resolve(line.slice("READY ".length));
    });
    child.once("exit", (code) => reject(new Error(`child exited with ${String(code)} before the store was ready`)));
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
