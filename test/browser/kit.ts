import { existsSync } from "node:fs";
import AxeBuilder from "@axe-core/playwright";
import { after, before, type TestContext } from "node:test";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { signToken, type TokenClaims } from "../../src/auth/jwt";
import { createSimulatedDevice, DeviceClient, type CommandHandler, type SimulationOptions } from "../../src/device-sdk";
import { RegisterDeviceDocument } from "../generated/graphql";
import { GraphQLTestClient } from "../kit/graphql-client";
import { TEST_JWT_SECRET } from "../kit/gateway";
import { startGatewayProcess, type GatewayProcess } from "../kit/process";
import { MOSQUITTO_URL, testStoreUri, uniqueName } from "../kit/store";

/** Debian's chromium (`apt-get install chromium`; .ci/run installs it), or CHROMIUM_PATH. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/**
 * The browser, or a reason to skip: only outside CI, where no browser could be installed. In CI a
 * missing browser fails the suite, so these tests never vanish silently.
 */
export async function launchBrowser(): Promise<{ browser: Browser } | { skip: string }> {
  if (!existsSync(CHROMIUM_PATH)) {
    const reason = `no browser at ${CHROMIUM_PATH}: install Debian's chromium (apt-get install -y chromium) or set CHROMIUM_PATH`;
    if (process.env.CI) throw new Error(`CI=true and ${reason}`);
    console.warn(`\n!!! SKIPPING the browser tests: ${reason}\n`);
    return { skip: reason };
  }
  return { browser: await chromium.launch({ executablePath: CHROMIUM_PATH, args: ["--no-sandbox"] }) };
}

/** Requests to anything but this machine are aborted and remembered, so a test can assert there were none. */
export async function isolatedContext(browser: Browser): Promise<{ context: BrowserContext; foreignRequests: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const foreignRequests: string[] = [];
  await context.route(
    (url) => !["127.0.0.1", "localhost"].includes(url.hostname) && url.protocol !== "data:",
    (route) => {
      foreignRequests.push(route.request().url());
      return route.abort("blockedbyclient");
    },
  );
  return { context, foreignRequests };
}

const STOP_GRACE_MS = 3000;

export interface ConsoleGateway {
  process: GatewayProcess;
  url: string;
  topicPrefix: string;
  tenant: string;
  /** `expiresIn`: jose's relative string ("12h") or absolute seconds since the epoch. */
  token(role: "admin" | "operator" | "viewer", claims?: Partial<TokenClaims>, expiresIn?: string | number): Promise<string>;
  client(role: "admin" | "operator" | "viewer", claims?: Partial<TokenClaims>): Promise<GraphQLTestClient>;
  /** Registers a device of `tenant` through the API and creates (not starts, unless asked) its simulated twin. */
  device(id: string, model: string, options?: { site?: string; start?: boolean; handler?: CommandHandler; drop?: () => boolean } & Partial<SimulationOptions>): Promise<DeviceClient>;
  stop(): Promise<void>;
}

/**
 * The gateway as `npm start` runs it (a separate process of dist/src/main.js), on the test store and
 * Mosquitto with a private database and topic prefix, on a port it picks itself.
 */
export async function startConsoleGateway(env: Record<string, string> = {}, { tenant = uniqueName("tenant-") } = {}): Promise<ConsoleGateway> {
  const topicPrefix = uniqueName("b");
  const process = await startGatewayProcess(
    {
      MONGODB_URI: await testStoreUri(),
      MONGODB_DB: uniqueName("b_"),
      MQTT_URL: MOSQUITTO_URL,
      MQTT_TOPIC_PREFIX: topicPrefix,
      JWT_SECRET: TEST_JWT_SECRET,
      DEMO: "0",
      ...env,
    },
  );
  const devices: DeviceClient[] = [];
  const token = (role: "admin" | "operator" | "viewer", claims: Partial<TokenClaims> = {}, expiresIn?: string | number) =>
    signToken(TEST_JWT_SECRET, { sub: `${role}-user`, tenant, roles: [role], ...claims }, expiresIn as string);
  const client = async (role: "admin" | "operator" | "viewer", claims: Partial<TokenClaims> = {}) =>
    new GraphQLTestClient(process.url, { token: await token(role, claims) });
  return {
    process,
    url: process.url,
    topicPrefix,
    tenant,
    token,
    client,
    async device(id, model, { site = "site-a", start = true, handler, drop, ...simulation } = {}) {
      await (await client("admin")).data(RegisterDeviceDocument, { input: { id, site, model } });
      const device = handler
        ? new DeviceClient({ deviceId: id, brokerUrl: MOSQUITTO_URL, topicPrefix, handler, drop })
        : createSimulatedDevice({ deviceId: id, model, brokerUrl: MOSQUITTO_URL, topicPrefix, ...simulation });
      devices.push(device);
      if (start) await device.start();
      return device;
    },
    async stop() {
      await Promise.all(devices.map((d) => d.stop({ graceful: false }).catch(() => undefined)));
      // Graceful shutdown is the e2e suite's subject; here it would only spend the file's time budget.
      const kill = setTimeout(() => void process.kill(), STOP_GRACE_MS);
      await process.stop();
      clearTimeout(kill);
    },
  };
}

/** Opens the console signed in by link, as the demo prints it, and waits for the commands view. */
export async function signInByLink(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/console#token=${token}`);
  await page.getByRole("heading", { name: "Commands", level: 1 }).waitFor();
}

/** Serious and critical accessibility violations of the page as it is now, described for an assertion message. */
export async function seriousViolations(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).analyze();
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).slice(0, 5).join(", ")}`);
}

export interface ConsoleSuite {
  /** The suite's gateway (started in `before`). */
  gateway(): ConsoleGateway;
  /** A fresh browser context (its own sessionStorage) that may not reach any other host; undefined after skipping the test. */
  newPage(t: TestContext): Promise<{ page: Page; foreign: string[] } | undefined>;
}

/** Hooks for a browser test file: one browser and one gateway process, every context closed afterwards. */
export function consoleSuite(): ConsoleSuite {
  let browser: Browser | undefined;
  let skip: string | undefined;
  let gw: ConsoleGateway | undefined;
  const contexts: BrowserContext[] = [];
  before(async () => {
    const launched = await launchBrowser();
    if ("skip" in launched) {
      skip = launched.skip;
      return;
    }
    browser = launched.browser;
    gw = await startConsoleGateway();
  });
  after(async () => {
    await Promise.all(contexts.map((c) => c.close().catch(() => undefined)));
    await browser?.close();
    await gw?.stop();
  });
  return {
    gateway: () => gw!,
    async newPage(t) {
      if (!browser) {
        t.skip(skip);
        return undefined;
      }
      const { context, foreignRequests } = await isolatedContext(browser);
      contexts.push(context);
      return { page: await context.newPage(), foreign: foreignRequests };
    },
  };
}
