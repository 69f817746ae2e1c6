/// <reference lib="dom" />
// (page.evaluate callbacks run in the browser)
import { randomUUID } from "node:crypto";
import { MongoClient } from "mongodb";
import { SendCommandDocument } from "../test/generated/graphql";
import { stopTestStore, testStoreUri } from "../test/kit/store";
import { isolatedContext, launchBrowser, signInByLink, startConsoleGateway } from "../test/browser/kit";
import { CommandRepository } from "../src/store/command-repository";
import type { Command } from "../src/commands/command";

/**
 * `npm run bench:console`: what an operator waits for in the console (issue 11, measured, not asserted).
 * 1. With SEED commands in the tenant, the time from opening the sign-in link to the first page of rows.
 * 2. With RATE commands per second sent for SECONDS (each passing QUEUED → SENT → DELIVERED → SUCCEEDED),
 *    how far behind its event each row's change appears (DOM time − the command's updatedAt at the
 *    gateway, same machine clock), and the longest main-thread task while it runs.
 */
const SEED = Number(process.env.CONSOLE_SEED ?? 10_000);
const RATE = Number(process.env.CONSOLE_RATE ?? 50);
const SECONDS = Number(process.env.CONSOLE_SECONDS ?? 20);
const DEVICES = 10;

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

async function main(): Promise<void> {
  const launched = await launchBrowser();
  if ("skip" in launched) throw new Error(launched.skip);
  const database = `bc_${Date.now().toString(36)}`;
  const gw = await startConsoleGateway({ MONGODB_DB: database, RATE_LIMIT_MUTATIONS_PER_MINUTE: "1000000" });
  const mongo = await MongoClient.connect(await testStoreUri());
  try {
    const deviceIds = Array.from({ length: DEVICES }, (_, i) => `bench-${i}`);
    for (const id of deviceIds) await gw.device(id, "thermostat");

    // 1. first page with SEED commands in the tenant (written through the store layer: faster than the API).
    const repository = new CommandRepository(mongo.db(database));
    const start = Date.now() - SEED * 1000;
    for (let i = 0; i < SEED; i += 200) {
      await Promise.all(
        Array.from({ length: Math.min(200, SEED - i) }, (_, j) => {
          const at = new Date(start + (i + j) * 1000);
          const command: Command = {
            id: randomUUID(), tenant: gw.tenant, site: "site-a", deviceId: deviceIds[(i + j) % DEVICES]!, type: "thermostat.setTemperature",
            payload: { celsius: 20 }, status: "SUCCEEDED", source: "OPERATOR", issuedBy: "seed", attempt: 1, timeoutSeconds: 30,
            createdAt: at, updatedAt: at, completedAt: at, result: { setpoint: 20 }, history: [{ status: "QUEUED", at, actor: "seed" }, { status: "SUCCEEDED", at, actor: "seed" }],
          };
          return repository.insert(command);
        }),
      );
    }
    const { context } = await isolatedContext(launched.browser);
    const page = await context.newPage();
    const token = await gw.token("operator");
    const firstPage: number[] = [];
    for (let round = 0; round < 5; round++) {
      await page.goto("about:blank");
      const t0 = Date.now();
      await page.goto(`${gw.url}/console#token=${token}`);
      await page.locator("tr[data-command-id]").nth(49).waitFor();
      firstPage.push(Date.now() - t0);
      await page.evaluate(() => sessionStorage.clear());
    }
    firstPage.sort((a, b) => a - b);
    console.log(`first page (50 rows) with ${SEED} commands, from sign-in link: median ${quantile(firstPage, 0.5)} ms, max ${firstPage.at(-1)} ms (5 rounds)`);

    // 2. RATE commands per second changing state while the commands view is open.
    await signInByLink(page, gw.url, token);
    await page.evaluate(() => {
      const w = window as unknown as { lags: number[]; longest: number };
      w.lags = [];
      w.longest = 0;
      new PerformanceObserver((list) => list.getEntries().forEach((e) => (w.longest = Math.max(w.longest, e.duration)))).observe({ type: "longtask", buffered: false });
      new MutationObserver((mutations) => {
        const now = Date.now();
        for (const m of mutations) {
          const rows = m.target instanceof Element && m.target.matches("tr[data-command-id]") ? [m.target] : Array.from(m.addedNodes).filter((n): n is Element => n instanceof Element && n.matches("tr[data-command-id]"));
          for (const row of rows) w.lags.push(now - Date.parse(row.getAttribute("data-updated-at")!));
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
    await Promise.all(sends);
    const achieved = (total / (Date.now() - sendStart)) * 1000;
    // Let the last events arrive: until no row changed for two seconds.
    let seen = -1;
    for (;;) {
      const count = await page.evaluate(() => (window as unknown as { lags: number[] }).lags.length);
      if (count === seen) break;
      seen = count;
      await new Promise((r) => setTimeout(r, 2000));
    }
    const { lags, longest } = await page.evaluate(() => {
      const w = window as unknown as { lags: number[]; longest: number };
      return { lags: w.lags, longest: w.longest };
    });
    lags.sort((a, b) => a - b);
    const late = lags.filter((l) => l > 1000).length;
    console.log(
      `${total} commands sent at ${achieved.toFixed(1)}/s: ${lags.length} row changes seen; behind the gateway's event: p50 ${quantile(lags, 0.5)} ms, p95 ${quantile(lags, 0.95)} ms, p99 ${quantile(lags, 0.99)} ms, max ${lags.at(-1)} ms; ${late} over 1 s; longest main-thread task ${Math.round(longest)} ms`,
    );
  } finally {
    await mongo.close();
    await launched.browser.close();
    await gw.stop();
    await stopTestStore();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
