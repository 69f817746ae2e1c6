import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SendCommandDocument } from "../generated/graphql";
import { waitForStatus } from "../kit/gateway";
import { uniqueName } from "../kit/store";
import { consoleSuite, seriousViolations, signInByLink } from "./kit";

/** GraphiQL from local files, and accessibility of every console view (issue 11's flows 6 and 7). */
describe("operator console in a browser: API explorer and accessibility", () => {
  const suite = consoleSuite();
  let gw: ReturnType<typeof suite.gateway>;
  const newPage = async (t: Parameters<typeof suite.newPage>[0]) => {
    gw = suite.gateway();
    return suite.newPage(t);
  };
  const row = (page: import("playwright-core").Page, id: string) => page.locator(`tr[data-command-id="${id}"]`);

  it("6. GraphiQL at /graphql loads with other hosts blocked and runs a query and a subscription", async (t) => {
    const opened = await newPage(t);
    if (!opened) return;
    const { page, foreign } = opened;
    await signInByLink(page, gw.url, await gw.token("operator"));
    const result = page.locator(".graphiql-response .result-window");
    /** Opens the operation by link and runs it until `expected` shows (GraphiQL ignores a click until its editors are ready). */
    const runUntil = async (query: string, expected: () => Promise<string>) => {
      await page.goto(`${gw.url}/graphql?query=${encodeURIComponent(query)}`);
      await page.locator(".graphiql-query-editor").getByText(query.split(" ")[0]!).first().waitFor();
      for (let attempt = 0; attempt < 20; attempt++) {
        await page.locator(".graphiql-execute-button").click();
        const text = await expected();
        if (await result.getByText(text).first().waitFor({ timeout: 3000 }).then(() => true, () => false)) return;
        // A subscription still running is stopped by the same button; start it again on the next round.
        if (query.startsWith("subscription")) await page.locator(".graphiql-execute-button").click();
      }
      assert.fail(`GraphiQL never showed the result of ${query}`);
    };
    await runUntil("query { commandTypes { name } }", async () => "thermostat.setTemperature");

    const deviceId = uniqueName("th-");
    await gw.device(deviceId, "thermostat");
    const operator = await gw.client("operator");
    // Each round sends a command; the subscription shows it once its WebSocket is open.
    await runUntil(`subscription { commandUpdated(deviceId: "${deviceId}") { id status } }`, async () => {
      return (await operator.data(SendCommandDocument, { input: { deviceId, type: "device.reboot" } })).sendCommand.id;
    });
    assert.deepEqual(foreign, [], "nothing was requested from another host");
  });

  it("7. every view has no serious or critical accessibility violations", async (t) => {
    const opened = await newPage(t);
    if (!opened) return;
    const { page } = opened;
    const deviceId = uniqueName("th-");
    await gw.device(deviceId, "thermostat");
    const operator = await gw.client("operator");
    const { sendCommand } = await operator.data(SendCommandDocument, { input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 23 } } });
    await waitForStatus(operator, sendCommand.id, "SUCCEEDED", 20_000);

    const check = async (view: string, ready: () => Promise<unknown>) => {
      await ready();
      assert.deepEqual(await seriousViolations(page), [], `${view} view`);
    };
    await page.goto(`${gw.url}/console`);
    await check("sign-in", () => page.getByLabel("JWT or API key").waitFor());
    await signInByLink(page, gw.url, await gw.token("admin"));
    await check("commands", () => row(page, sendCommand.id).waitFor());
    await page.goto(`${gw.url}/console#/commands/${sendCommand.id}`);
    await check("command", () => page.getByRole("heading", { name: "History" }).waitFor());
    await page.goto(`${gw.url}/console#/devices`);
    await check("devices", () => page.locator(`tr[data-device-id="${deviceId}"]`).waitFor());
    await page.goto(`${gw.url}/console#/devices/${deviceId}`);
    await check("device and send form", () => page.getByRole("heading", { name: "Send a command" }).waitFor());
    await page.goto(`${gw.url}/console#/alerts`);
    await check("alerts", () => page.getByRole("heading", { name: "Open alerts" }).waitFor());
    await page.goto(`${gw.url}/console#/rules`);
    await check("rules", () => page.getByRole("heading", { name: "Automation rules" }).waitFor());
  });
});
