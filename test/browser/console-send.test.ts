/// <reference lib="dom" />
// (page.evaluate callbacks run in the browser)
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Page } from "playwright-core";
import { CommandsDocument } from "../generated/graphql";
import { uniqueName } from "../kit/store";
import { consoleSuite, signInByLink } from "./kit";

/**
 * The operator console in a real browser (Debian's chromium via playwright-core), against the gateway
 * as `npm start` runs it, with simulated devices on Mosquitto (CONTRACT §6.1; sign-in and issue 11's flows 1-2).
 */
describe("operator console in a browser: sign-in and sending", () => {
  const suite = consoleSuite();
  let gw: ReturnType<typeof suite.gateway>;
  const newPage = async (t: Parameters<typeof suite.newPage>[0]) => {
    gw = suite.gateway();
    return suite.newPage(t);
  };

  /** Every data-status a row of this command showed, in order, recorded in the page as the DOM changed. */
  async function recordStatuses(page: Page): Promise<void> {
    await page.evaluate(() => {
      const seen: Record<string, string[]> = {};
      (window as unknown as { seenStatuses: typeof seen }).seenStatuses = seen;
      const note = (row: Element) => {
        const id = row.getAttribute("data-command-id");
        const status = row.getAttribute("data-status");
        if (!id || !status) return;
        const list = (seen[id] ??= []);
        if (list[list.length - 1] !== status) list.push(status);
      };
      new MutationObserver((mutations) => {
        for (const m of mutations) {
          if (m.target instanceof Element && m.target.matches("tr[data-command-id]")) note(m.target);
          m.addedNodes.forEach((n) => n instanceof Element && n.querySelectorAll("tr[data-command-id]").forEach(note));
        }
      }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"] });
    });
  }
  const statusesSeen = (page: Page, id: string) => page.evaluate((commandId) => (window as unknown as { seenStatuses: Record<string, string[]> }).seenStatuses[commandId] ?? [], id);
  const row = (page: Page, id: string) => page.locator(`tr[data-command-id="${id}"]`);

  it("signs in by link, keeps the token only in sessionStorage, signs out, and sends an expired token back to sign-in with a message", async (t) => {
    const opened = await newPage(t);
    if (!opened) return;
    const { page } = opened;
    await signInByLink(page, gw.url, await gw.token("operator"));
    assert.equal(new URL(page.url()).hash, "#/commands", "the token is removed from the address");
    assert.ok(await page.evaluate(() => Object.keys(sessionStorage).length === 1 && localStorage.length === 0));
    await page.reload();
    await page.getByRole("heading", { name: "Commands", level: 1 }).waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to the operator console" }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, "signing out forgets the token");

    const expired = await gw.token("operator", {}, Math.floor(Date.now() / 1000) - 60);
    await page.goto(`${gw.url}/console#token=${expired}`);
    await page.getByText("This token has expired").waitFor();

    // A token that expires while the console is open: back to sign-in, saying why.
    await signInByLink(page, gw.url, await gw.token("operator", {}, Math.floor(Date.now() / 1000) + 10));
    await page.getByText("Your session has expired. Sign in again.").waitFor({ timeout: 30_000 });
    await page.getByLabel("JWT or API key").waitFor();
  });

  it("1. an operator sends thermostat.setTemperature 22 from the form and sees the row go QUEUED → SENT → DELIVERED → SUCCEEDED without reloading", async (t) => {
    const opened = await newPage(t);
    if (!opened) return;
    const { page, foreign } = opened;
    const deviceId = uniqueName("th-");
    // Offline at first, so the command waits QUEUED until the device connects.
    const device = await gw.device(deviceId, "thermostat", { start: false, latencyMs: [300, 300] });
    await signInByLink(page, gw.url, await gw.token("operator"));
    await page.goto(`${gw.url}/console#/devices/${deviceId}`);
    await page.getByRole("heading", { name: "Send a command" }).waitFor();
    assert.deepEqual(
      await page.getByLabel("Command type").locator("option").allTextContents(),
      ["thermostat.setTemperature", "device.reboot"],
      "only the types a thermostat accepts",
    );
    await recordStatuses(page);
    await page.getByLabel("celsius").fill("22");
    await page.getByRole("button", { name: "Send command" }).click();
    const sentRow = page.locator("tr[data-command-id]").first();
    await sentRow.and(page.locator('[data-status="QUEUED"]')).waitFor();
    const id = (await sentRow.getAttribute("data-command-id"))!;

    await device.start();
    await row(page, id).and(page.locator('[data-status="SUCCEEDED"]')).waitFor({ timeout: 20_000 });
    assert.deepEqual(await statusesSeen(page, id), ["QUEUED", "SENT", "DELIVERED", "SUCCEEDED"]);
    assert.deepEqual(foreign, []);
  });

  it("2. a payload out of range is refused in the form, and a value the server refuses shows at its field", async (t) => {
    const opened = await newPage(t);
    if (!opened) return;
    const { page } = opened;
    const deviceId = uniqueName("th-");
    await gw.device(deviceId, "thermostat");
    await signInByLink(page, gw.url, await gw.token("operator"));
    await page.goto(`${gw.url}/console#/devices/${deviceId}`);
    await page.getByLabel("celsius").fill("40");
    await page.getByRole("button", { name: "Send command" }).click();
    await page.locator("#payload_celsius").locator("xpath=ancestor::*[contains(@class,'form-group')][1]").getByText("must be <= 35").waitFor();
    const operator = await gw.client("operator");
    assert.equal((await operator.data(CommandsDocument, { filter: { deviceId } })).commands.edges.length, 0, "nothing was sent");

    // A console whose schema is wider than the gateway's (an older build, a stricter server): the browser
    // lets 40 through and the gateway's refusal, with its JSON pointer, lands at the same field.
    await page.route(`${gw.url}/graphql`, async (route) => {
      if (!route.request().postData()?.includes("query ConsoleDevice(")) return route.continue();
      const response = await route.fetch();
      const body = await response.json();
      for (const type of body.data.commandTypes) if (type.name === "thermostat.setTemperature") type.payloadSchema.properties.celsius.maximum = 50;
      await route.fulfill({ response, json: body });
    });
    await page.reload();
    await page.getByLabel("celsius").fill("40");
    await page.getByRole("button", { name: "Send command" }).click();
    await page.locator("#payload_celsius").locator("xpath=ancestor::*[contains(@class,'form-group')][1]").getByText("payload/celsius must be <= 35").waitFor();
    assert.equal((await operator.data(CommandsDocument, { filter: { deviceId } })).commands.edges.length, 0, "the gateway stored nothing");
  });

});
