import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Page } from "playwright-core";
import { SendCommandDocument } from "../generated/graphql";
import { waitForStatus } from "../kit/gateway";
import { uniqueName } from "../kit/store";
import { consoleSuite, signInByLink } from "./kit";

/**
 * The operator console in a real browser (Debian's chromium via playwright-core), against the gateway
 * as `npm start` runs it, with simulated devices on Mosquitto (CONTRACT §6.1; issue 11's flows 3-5).
 */
describe("operator console in a browser: acting on commands and who may", () => {
  const suite = consoleSuite();
  let gw: ReturnType<typeof suite.gateway>;
  const newPage = async (t: Parameters<typeof suite.newPage>[0]) => {
    gw = suite.gateway();
    return suite.newPage(t);
  };

  const row = (page: Page, id: string) => page.locator(`tr[data-command-id="${id}"]`);

  it("3. a device that never answers: TIMED_OUT, an alert appears live, Retry brings it to SUCCEEDED once the device answers, and it ran once", async (t) => {
    const opened = await newPage(t);
    if (!opened) return;
    const { page } = opened;
    const deviceId = uniqueName("th-");
    let silent = true;
    const device = await gw.device(deviceId, "thermostat", { handler: () => ({ result: { setpoint: 21 } }), drop: () => silent });
    const operator = await gw.client("operator");
    const { sendCommand } = await operator.data(SendCommandDocument, { input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 21 }, timeoutSeconds: 2 } });
    await signInByLink(page, gw.url, await gw.token("operator"));
    await page.goto(`${gw.url}/console#/commands/${sendCommand.id}`);
    await page.getByRole("heading", { name: "Alerts of this command" }).waitFor();

    await page.locator('section[data-status="TIMED_OUT"]').waitFor({ timeout: 20_000 });
    await page.locator('li[data-kind="TIMED_OUT"].open').waitFor();
    assert.equal(await page.getByRole("button", { name: "Cancel" }).count(), 0);

    silent = false;
    await page.getByRole("button", { name: "Retry" }).click();
    await page.locator('section[data-status="SUCCEEDED"]').waitFor({ timeout: 20_000 });
    assert.equal(await page.getByTestId("attempt").textContent(), "2");
    await page.getByRole("button", { name: "Retry" }).waitFor({ state: "detached" });
    assert.equal(device.executions.get(sendCommand.id), 1, "it ran once on the device");
  });

  /** A command to a device that never answers, already TIMED_OUT. */
  async function timedOutCommand() {
    const deviceId = uniqueName("th-");
    await gw.device(deviceId, "thermostat", { dropRate: 1 });
    const operator = await gw.client("operator");
    const { sendCommand } = await operator.data(SendCommandDocument, { input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 20 }, timeoutSeconds: 1 } });
    await waitForStatus(operator, sendCommand.id, "TIMED_OUT", 20_000);
    return { sendCommand, deviceId, operator };
  }

  it("4. Escalate with a note: the level and note show on the command and a new alert appears", async (t) => {
    const opened = await newPage(t);
    if (!opened) return;
    const { page } = opened;
    const { sendCommand } = await timedOutCommand();
    await signInByLink(page, gw.url, await gw.token("operator"));
    await page.goto(`${gw.url}/console#/commands/${sendCommand.id}`);
    await page.locator('li[data-kind="TIMED_OUT"]').waitFor();
    await page.getByLabel("Escalation note").fill("called the site, nobody there");
    await page.getByRole("button", { name: "Escalate" }).click();
    await page.getByTestId("escalation").getByText("Level 1").waitFor();
    await page.getByTestId("escalation").getByText("called the site, nobody there").waitFor();
    await page.locator('li[data-kind="ESCALATED"]').waitFor();
    await page.locator("ol.timeline li").last().getByText("escalated to level 1: called the site, nobody there").waitFor();
  });

  it("5. a viewer sees commands but no actions or send form; an operator of another site cannot act outside it; another tenant's commands never appear", async (t) => {
    const opened = await newPage(t);
    if (!opened) return;
    const { page } = opened;
    const { sendCommand, deviceId, operator } = await timedOutCommand();

    await signInByLink(page, gw.url, await gw.token("viewer"));
    await row(page, sendCommand.id).waitFor();
    await page.goto(`${gw.url}/console#/commands/${sendCommand.id}`);
    await page.locator('section[data-status="TIMED_OUT"]').waitFor();
    for (const name of ["Retry", "Escalate", "Cancel"]) assert.equal(await page.getByRole("button", { name }).count(), 0, `a viewer has no ${name}`);
    await page.goto(`${gw.url}/console#/devices/${deviceId}`);
    await page.getByRole("heading", { name: "Recent commands" }).waitFor();
    assert.equal(await page.getByRole("heading", { name: "Send a command" }).count(), 0, "a viewer has no send form");

    const other = await newPage(t);
    await signInByLink(other!.page, gw.url, await gw.token("operator", { sub: "op-site-b", sites: ["site-b"] }));
    await other!.page.getByText("No commands match.").waitFor();
    await other!.page.goto(`${gw.url}/console#/devices/${deviceId}`);
    await other!.page.getByRole("heading", { name: "Device not found" }).waitFor();
    await other!.page.goto(`${gw.url}/console#/commands/${sendCommand.id}`);
    await other!.page.getByRole("heading", { name: "Command not found" }).waitFor();

    const stranger = await newPage(t);
    await signInByLink(stranger!.page, gw.url, await gw.token("admin", { tenant: uniqueName("other-") }));
    await stranger!.page.getByText("No commands match.").waitFor();
    // A new command of our tenant, sent while the stranger watches, does not appear either.
    const { sendCommand: later } = await operator.data(SendCommandDocument, { input: { deviceId, type: "device.reboot" } });
    await page.goto(`${gw.url}/console#/commands`);
    await row(page, later.id).waitFor();
    assert.equal(await stranger!.page.locator("tr[data-command-id]").count(), 0);
  });

});
