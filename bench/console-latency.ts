/// <reference lib="dom" />
// (page.evaluate callbacks run in the browser)
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { startEmbeddedStore } from "../src/embedded/ferretdb";
import { createLogger } from "../src/logger";
import { CommandsDocument, SendCommandDocument } from "../test/generated/graphql";
import { stopTestStore, uniqueName } from "../test/kit/store";
import type { Browser } from "playwright-core";
import { isolatedContext, launchBrowser, signInByLink, startConsoleGateway } from "../test/browser/kit";
import { CommandRepository } from "../src/store/command-repository";
import type { Command } from "../src/commands/command";

/**
 * `npm run bench:console`: what an operator waits for in the console (issue 11, measured, not asserted).
 * 1. With SEED commands in the tenant, the time from opening the sign-in link to the first page of rows, on the
 *    embedded store as `npm start` runs it (the gateway's own FerretDB on SQLite, seeded before it starts).
 * 2. With RATE commands per second sent for SECONDS (each passing QUEUED → SENT → DELIVERED → SUCCEEDED),
 *    how far behind its event each row's change appears (DOM time − the command's updatedAt at the
 *    gateway, same machine clock), and the longest main-thread task while it runs.
 */
const SEED = Number(process.env.CONSOLE_SEED ?? 10_000);
const RATE = Number(process.env.CONSOLE_RATE ?? 50);
const SECONDS = Number(process.env.CONSOLE_SECONDS ?? 20);
const DEVICES = 10;

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

// Each commandUpdated event's arrival in the page, so the console's own share of the lag can be told
// apart from the gateway's (store, bus) on a loaded machine.
function recordArrivals(): void {
  const w = window as unknown as { arrivals: Map<string, number> };
  w.arrivals = new Map();
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      this.addEventListener("message", (event) => {
        const message = JSON.parse(String(event.data)) as { type?: string; payload?: { data?: { commandUpdated?: { id: string; updatedAt: string } } } };
        const command = message.type === "next" ? message.payload?.data?.commandUpdated : undefined;
        if (command) w.arrivals.set(`${command.id}@${command.updatedAt}`, Date.now());
      });
    }
  };
}

async function main(): Promise<void> {
  const launched = await launchBrowser();
  if ("skip" in launched) throw new Error(launched.skip);
  try {
    // Each phase on a fresh database: the seeded one would slow the store down for the second.
    if (SEED > 0) await firstPage(launched.browser);
    if (SECONDS > 0) await keepingUp(launched.browser);
  } finally {
    await launched.browser.close();
    await stopTestStore();
  }
}

async function benchGateway(env: Record<string, string> = {}, tenant?: string) {
  const database = `bc_${Date.now().toString(36)}`;
  const gw = await startConsoleGateway({ MONGODB_DB: database, RATE_LIMIT_MUTATIONS_PER_MINUTE: "1000000", ...env }, { tenant });
  for (const id of DEVICE_IDS) await gw.device(id, "thermostat");
  return { gw, database };
}

const DEVICE_IDS = Array.from({ length: DEVICES }, (_, i) => `bench-${i}`);

/** SEED commands of `tenant` written into a fresh data directory's store (through the store layer: faster than the API). */
async function seededDataDir(tenant: string, database: string): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), "bench-console-"));
  const store = await startEmbeddedStore({ dataDir, log: createLogger("warn") });
  const mongo = await MongoClient.connect(store.uri);
  try {
    const repository = new CommandRepository(mongo.db(database));
    const start = Date.now() - SEED * 1000;
    for (let i = 0; i < SEED; i += 200) {
      await Promise.all(
        Array.from({ length: Math.min(200, SEED - i) }, (_, j) => {
          const at = new Date(start + (i + j) * 1000);
          const command: Command = {
            id: randomUUID(), v: 0, tenant, site: "site-a", deviceId: DEVICE_IDS[(i + j) % DEVICES]!, type: "thermostat.setTemperature",
            payload: { celsius: 20 }, status: "SUCCEEDED", source: "OPERATOR", issuedBy: "seed", attempt: 1, timeoutSeconds: 30,
            createdAt: at, updatedAt: at, completedAt: at, result: { setpoint: 20 }, history: [{ status: "QUEUED", at, actor: "seed" }, { status: "SUCCEEDED", at, actor: "seed" }],
          };
          return repository.insert(command);
        }),
      );
    }
  } finally {
    await mongo.close();
    await store.stop();
  }
  return dataDir;
}

async function firstPage(browser: Browser): Promise<void> {
  const tenant = uniqueName("tenant-");
  const database = `bc_${Date.now().toString(36)}`;
  const dataDir = await seededDataDir(tenant, database);
  // MONGODB_URI empty: the gateway starts the embedded store on DATA_DIR, as `npm start` does.
  const { gw } = await benchGateway({ MONGODB_URI: "", DATA_DIR: dataDir, MONGODB_DB: database }, tenant);
  try {
    const { context } = await isolatedContext(browser);
    const page = await context.newPage();
    const token = await gw.token("operator");
    const firstPage: number[] = [];
    for (let round = 0; round < 5; round++) {
      await page.goto("about:blank");
      const t0 = Date.now();
      await page.goto(`${gw.url}/console#token=${token}`);
      await page
        .locator("tr[data-command-id]")
        .nth(49)
        .waitFor({ timeout: 180_000 })
        .catch(async (error) => {
          throw new Error(`no first page: ${await page.locator("main").innerText().catch(() => "(no main)")}`, { cause: error });
        });
      firstPage.push(Date.now() - t0);
      await page.evaluate(() => sessionStorage.clear());
    }
    firstPage.sort((a, b) => a - b);
    console.log(`first page (50 rows) with ${SEED} commands, from sign-in link: median ${quantile(firstPage, 0.5)} ms, max ${firstPage.at(-1)} ms (5 rounds)`);
    // The gateway's share: the same first page as one `commands` request, and the next page by its cursor.
    const operator = await gw.client("operator");
    const query: number[] = [];
    const next: number[] = [];
    for (let round = 0; round < 5; round++) {
      let t0 = Date.now();
      const { commands } = await operator.data(CommandsDocument, { first: 50 });
      query.push(Date.now() - t0);
      t0 = Date.now();
      await operator.data(CommandsDocument, { first: 50, after: commands.pageInfo.endCursor });
      next.push(Date.now() - t0);
    }
    query.sort((a, b) => a - b);
    next.sort((a, b) => a - b);
    console.log(`the commands query alone (50 rows): median ${quantile(query, 0.5)} ms, max ${query.at(-1)} ms; the next page: median ${quantile(next, 0.5)} ms, max ${next.at(-1)} ms (5 rounds)`);

  } finally {
    await gw.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function keepingUp(browser: Browser): Promise<void> {
  // The embedded store on a fresh data directory, as `npm start` runs it.
  const dataDir = mkdtempSync(join(tmpdir(), "bench-console-"));
  const { gw } = await benchGateway({ MONGODB_URI: "", DATA_DIR: dataDir });
  const deviceIds = DEVICE_IDS;
  try {
    const { context } = await isolatedContext(browser);
    await context.addInitScript(recordArrivals);
    const page = await context.newPage();
    // 2. RATE commands per second changing state while the commands view is open.
    await signInByLink(page, gw.url, await gw.token("operator"));
    await page.evaluate(() => {
      const w = window as unknown as { lags: number[]; inPage: number[]; longest: number; arrivals: Map<string, number> };
      w.lags = [];
      w.inPage = [];
      w.longest = 0;
      new PerformanceObserver((list) => list.getEntries().forEach((e) => (w.longest = Math.max(w.longest, e.duration)))).observe({ type: "longtask", buffered: false });
      new MutationObserver((mutations) => {
        const now = Date.now();
        for (const m of mutations) {
          const rows = m.target instanceof Element && m.target.matches("tr[data-command-id]") ? [m.target] : Array.from(m.addedNodes).filter((n): n is Element => n instanceof Element && n.matches("tr[data-command-id]"));
          for (const row of rows) {
            const updatedAt = row.getAttribute("data-updated-at")!;
            w.lags.push(now - Date.parse(updatedAt));
            const arrived = w.arrivals.get(`${row.getAttribute("data-command-id")}@${updatedAt}`);
            if (arrived !== undefined) w.inPage.push(now - arrived);
          }
        }
      }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-status", "data-updated-at"] });
    });
    const clients = await Promise.all(deviceIds.map(() => gw.client("operator")));
    const total = RATE * SECONDS;
    const sendStart = Date.now();
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < total; i++) {
      const due = sendStart + (i * 1000) / RATE;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      sends.push(clients[i % DEVICES]!.data(SendCommandDocument, { input: { deviceId: deviceIds[i % DEVICES]!, type: "thermostat.setTemperature", payload: { celsius: 20 + (i % 10) } } }));
    }
    const rejections = (await Promise.allSettled(sends)).flatMap((r) => (r.status === "rejected" ? [String((r.reason as Error)?.message ?? r.reason)] : []));
    const refused = rejections.length;
    if (refused) console.log(`refused sends, e.g.: ${[...new Set(rejections)].slice(0, 3).join(" | ")}`);
    const achieved = (total / (Date.now() - sendStart)) * 1000;
    // Let the last events arrive: until no row changed for two seconds.
    let seen = -1;
    for (;;) {
      const count = await page.evaluate(() => (window as unknown as { lags: number[] }).lags.length);
      if (count === seen) break;
      seen = count;
      await new Promise((r) => setTimeout(r, 2000));
    }
    const { lags, inPage, longest } = await page.evaluate(() => {
      const w = window as unknown as { lags: number[]; inPage: number[]; longest: number };
      return { lags: w.lags, inPage: w.inPage, longest: w.longest };
    });
    lags.sort((a, b) => a - b);
    inPage.sort((a, b) => a - b);
    const late = lags.filter((l) => l > 1000).length;
    console.log(
      `${RATE}/s for ${SECONDS} s: ${total - refused} commands sent (${refused} refused) at ${achieved.toFixed(1)}/s: ${lags.length} row changes seen; behind the gateway's event: p50 ${quantile(lags, 0.5)} ms, p95 ${quantile(lags, 0.95)} ms, p99 ${quantile(lags, 0.99)} ms, max ${lags.at(-1)} ms; ${late} over 1 s; from the event's arrival in the page to the row: p50 ${quantile(inPage, 0.5)} ms, p99 ${quantile(inPage, 0.99)} ms, max ${inPage.at(-1)} ms; longest main-thread task ${Math.round(longest)} ms`,
    );
  } finally {
    await gw.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
