import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Page } from "playwright-core";
import { uniqueName } from "../kit/store";
import { consoleSuite, seriousViolations, signInByLink } from "./kit";

/**
 * The console's live device list (deviceUpdated, §6.2) and its fleet view (§6.3, with the console's
 * previewFleetTargets and FleetCommand.allowedActions), in a real browser against the gateway as `npm start` runs it.
 */
describe("operator console in a browser: live devices and fleet commands", () => {
  const suite = consoleSuite();
  let gw: ReturnType<typeof suite.gateway>;
  const newPage = async (t: Parameters<typeof suite.newPage>[0]) => {
    gw = suite.gateway();
    return suite.newPage(t);
  };
  const fleetItem = (page: Page, name: string) => page.locator("li.fleet", { has: page.getByRole("heading", { name }) });
  /**
   * The page's GraphQL WebSocket through a proxy that remembers what the gateway sent; `deliver` sends the page a
   * message again and returns once the page has handled it (it answers a ping sent after it) and rendered.
   */
  const interceptSubscriptions = async (page: Page) => {
    const BARRIER = uniqueName("barrier-");
    const received: string[] = [];
    let toPage: ((message: string) => void) | undefined;
    let pong: (() => void) | undefined;
    await page.routeWebSocket(/\/graphql$/, (ws) => {
      const server = ws.connectToServer();
      toPage = (message) => ws.send(message);
      ws.onMessage((message) => (String(message).includes(BARRIER) ? pong?.() : server.send(message)));
      server.onMessage((message) => {
        received.push(String(message));
        ws.send(message);
      });
    });
    return {
      received,
      async deliver(message: string) {
        const answered = new Promise<void>((resolve) => (pong = resolve));
        toPage!(message);
        toPage!(JSON.stringify({ type: "ping", payload: { barrier: BARRIER } }));
        await answered;
        await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
      },
    };
  };
  const buttonsOf = async (page: Page, name: string) => (await fleetItem(page, name).locator(".actions button").allInnerTexts()).map((t) => t.split(/\s/)[0]).sort();

  it("the device list shows a device going offline and online again without a reload", async (t) => {
    const opened = await newPage(t);
    if (!opened) return;
    const { page } = opened;
    const deviceId = uniqueName("live-");
    const device = await gw.device(deviceId, "thermostat");
    await signInByLink(page, gw.url, await gw.token("viewer"));
    await page.getByRole("link", { name: "Devices" }).click();
    const row = page.locator(`tr[data-device-id="${deviceId}"]`);
    await row.and(page.locator('[data-online="true"]')).waitFor();
    // Marks the document: a reload would lose it.
    await page.evaluate(() => ((window as unknown as { sameDocument: boolean }).sameDocument = true));

    await device.stop({ graceful: false }); // a crash: the broker publishes the last will
    await row.and(page.locator('[data-online="false"]')).waitFor({ timeout: 30_000 });
    await row.getByText("Offline").waitFor();
    await device.start();
    await row.and(page.locator('[data-online="true"]')).waitFor({ timeout: 30_000 });
    await row.getByText("Online").waitFor();
    assert.equal(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument), true, "no reload");
  });

  it("an operator previews a fleet command (a device of another site skipped), creates it, and sees its progress reach completion live", async (t) => {
    const opened = await newPage(t);
    if (!opened) return;
    const { page } = opened;
    const model = "thermostat";
    const mine = [uniqueName("fa-"), uniqueName("fb-")];
    const foreign = uniqueName("fz-");
    for (const id of mine) await gw.device(id, model, { site: "site-a" });
    await gw.device(foreign, model, { site: "site-b" });
    await signInByLink(page, gw.url, await gw.token("operator", { sites: ["site-a"] }));
    await page.getByRole("link", { name: "Fleet" }).click();
    await page.getByRole("heading", { name: "New fleet command" }).waitFor();

    const name = uniqueName("setpoint-");
    await page.getByLabel("Name").fill(name);
    await page.getByLabel("Command type").selectOption("thermostat.setTemperature");
    await page.getByLabel(/^Device ids/).fill([...mine, foreign].join(", "));
    await page.getByLabel("Payload (JSON)").fill('{"celsius": 21}');
    assert.equal(await page.getByRole("button", { name: "Create fleet command" }).isDisabled(), true, "no create before a preview");
    await page.getByRole("button", { name: "Preview devices" }).click();
    const preview = page.getByTestId("fleet-preview");
    await preview.getByRole("heading", { name: "3 devices match: 2 will be sent the command, 1 skipped" }).waitFor();
    for (const id of mine) await preview.locator(`tr[data-device-id="${id}"][data-outcome="targeted"]`).waitFor();
    await preview.locator(`tr[data-device-id="${foreign}"][data-outcome="skipped"]`).getByText(/FORBIDDEN: .*site-b/).waitFor();
    assert.deepEqual(await seriousViolations(page), [], "the fleet view with a preview has no serious accessibility violations");

    await page.getByRole("button", { name: "Create fleet command" }).click();
    const item = fleetItem(page, name);
    await item.and(page.locator('[data-status="COMPLETED"]')).waitFor({ timeout: 60_000 });
    await item.locator('.segment[data-status="SUCCEEDED"][data-count="2"]').waitFor();
    await item.getByText("2 of 2 started: Succeeded 2").waitFor();
    assert.deepEqual(await buttonsOf(page, name), [], "a completed fleet command offers no action");
  });

  it("pause, resume and cancel are offered only when the status and the caller allow them", async (t) => {
    const opened = await newPage(t);
    if (!opened) return;
    const { page } = opened;
    const socket = await interceptSubscriptions(page);
    const ids = [uniqueName("slow-"), uniqueName("slow-"), uniqueName("slow-")];
    for (const id of ids) await gw.device(id, "thermostat", { site: "site-a" });
    await signInByLink(page, gw.url, await gw.token("operator"));
    await page.getByRole("link", { name: "Fleet" }).click();
    const name = uniqueName("slow-rollout-");
    await page.getByLabel("Name").fill(name);
    await page.getByLabel("Command type").selectOption("thermostat.setTemperature");
    await page.getByLabel(/^Device ids/).fill(ids.join(","));
    await page.getByLabel("Payload (JSON)").fill('{"celsius": 20}');
    // One device a minute: it stays RUNNING for the test.
    await page.getByLabel(/^Devices started per minute/).fill("1");
    await page.getByRole("button", { name: "Preview devices" }).click();
    await page.getByTestId("fleet-preview").getByRole("heading", { name: "3 devices match: 3 will be sent the command, 0 skipped" }).waitFor();
    await page.getByRole("button", { name: "Create fleet command" }).click();
    const item = fleetItem(page, name);
    await item.and(page.locator('[data-status="RUNNING"]')).waitFor();
    assert.deepEqual(await buttonsOf(page, name), ["Cancel", "Pause"]);

    // Another operator and a viewer see it without any button (an operator changes only its own).
    for (const [role, sub] of [["operator", "other-operator"], ["viewer", "viewer-user"]] as const) {
      const other = await suite.newPage(t);
      await signInByLink(other!.page, gw.url, await gw.token(role, { sub }));
      await other!.page.getByRole("link", { name: "Fleet" }).click();
      await fleetItem(other!.page, name).waitFor();
      assert.deepEqual(await buttonsOf(other!.page, name), [], `${role} ${sub}: no buttons`);
      assert.equal(await other!.page.getByRole("heading", { name: "New fleet command" }).count(), role === "viewer" ? 0 : 1);
    }

    await item.getByRole("button", { name: /^Pause/ }).click();
    await item.and(page.locator('[data-status="PAUSED"]')).waitFor();
    assert.deepEqual(await buttonsOf(page, name), ["Cancel", "Resume"]);
    await item.getByRole("button", { name: /^Resume/ }).click();
    await item.and(page.locator('[data-status="RUNNING"]')).waitFor();
    assert.deepEqual(await buttonsOf(page, name), ["Cancel", "Pause"]);
    // An event of the PAUSED version arriving after the answer to Resume (they travel apart) changes nothing.
    const paused = socket.received.find((m) => m.includes('"fleetCommandUpdated"') && m.includes(name) && m.includes('"PAUSED"'));
    assert.ok(paused, "the PAUSED event came over the subscription");
    await socket.deliver(paused);
    assert.equal(await item.getAttribute("data-status"), "RUNNING", "a stale event replaced a newer state");
    assert.deepEqual(await buttonsOf(page, name), ["Cancel", "Pause"]);
    await item.getByRole("button", { name: /^Cancel/ }).click();
    await item.and(page.locator('[data-status="CANCELED"]')).waitFor();
    await item.locator(".actions").waitFor({ state: "detached" });
  });
});
