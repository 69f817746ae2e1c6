import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { SendCommandDocument, EscalateCommandDocument } from "../test/generated/graphql";
import { waitForStatus } from "../test/kit/gateway";
import { stopTestStore } from "../test/kit/store";
import { isolatedContext, launchBrowser, signInByLink, startConsoleGateway } from "../test/browser/kit";

/** `npm run console:screenshots`: the README's pictures of the console, regenerated from a live gateway. */
const OUT = resolve(__dirname, "../../docs/console");

async function main(): Promise<void> {
  const launched = await launchBrowser();
  if ("skip" in launched) throw new Error(launched.skip);
  const gw = await startConsoleGateway();
  try {
    await gw.device("thermostat-1", "thermostat", { site: "plant-1", latencyMs: [50, 150] });
    await gw.device("valve-1", "valve", { site: "plant-1", latencyMs: [50, 150] });
    await gw.device("thermostat-2", "thermostat", { site: "plant-2", dropRate: 1 });
    const operator = await gw.client("operator", { sub: "ana@plant" });
    const send = async (deviceId: string, type: string, payload?: object, timeoutSeconds?: number) =>
      (await operator.data(SendCommandDocument, { input: { deviceId, type, payload, timeoutSeconds } })).sendCommand;
    for (const celsius of [19, 21, 22]) await waitForStatus(operator, (await send("thermostat-1", "thermostat.setTemperature", { celsius })).id, "SUCCEEDED");
    await waitForStatus(operator, (await send("valve-1", "valve.open", { seconds: 30 })).id, "SUCCEEDED");
    const stuck = await send("thermostat-2", "thermostat.setTemperature", { celsius: 24 }, 2);
    await waitForStatus(operator, stuck.id, "TIMED_OUT", 20_000);
    await operator.data(EscalateCommandDocument, { id: stuck.id, note: "no answer from plant 2; calling the site" });

    mkdirSync(OUT, { recursive: true });
    const { context } = await isolatedContext(launched.browser);
    const page = await context.newPage();
    await signInByLink(page, gw.url, await gw.token("operator", { sub: "ana@plant" }));
    await page.locator(`tr[data-command-id="${stuck.id}"]`).waitFor();
    await page.screenshot({ path: `${OUT}/commands.png` });
    await page.goto(`${gw.url}/console#/commands/${stuck.id}`);
    await page.locator("li[data-kind='ESCALATED']").waitFor();
    await page.screenshot({ path: `${OUT}/command-timeline.png`, fullPage: true });
    await page.goto(`${gw.url}/console#/devices/thermostat-1`);
    await page.getByLabel("celsius").fill("40");
    await page.getByRole("button", { name: "Send command" }).click();
    await page.getByText("must be <= 35").waitFor();
    await page.locator("section.send").screenshot({ path: `${OUT}/send-form.png` });
    console.log(`wrote ${OUT}/commands.png, command-timeline.png, send-form.png`);
  } finally {
    await launched.browser.close();
    await gw.stop();
    await stopTestStore();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
