import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SimulatedModel, type DeviceCommand, type SimulationOptions } from "../../src/device-sdk";

const NOW = new Date("2030-01-01T00:00:00.000Z");

function command(type: string, payload: Record<string, unknown> = {}): DeviceCommand {
  return { id: `c-${type}`, type, payload, attempt: 1, issuedAt: NOW.toISOString(), expiresAt: null };
}

/** A random source that returns the given draws in order and fails the test on any extra draw. */
function draws(...values: number[]): () => number {
  return () => {
    const next = values.shift();
    if (next === undefined) assert.fail("unexpected random draw");
    return next;
  };
}

const model = (options: Partial<SimulationOptions> & { model: string }) => new SimulatedModel({ clock: { now: () => NOW }, random: draws(), ...options });

describe("SimulatedModel", () => {
  it("thermostat: sets the temperature and keeps the setpoint", async () => {
    const thermostat = model({ model: "thermostat" });
    assert.deepEqual(await thermostat.handle(command("thermostat.setTemperature", { celsius: 21.5 })), { result: { celsius: 21.5, setpoint: 21.5 } });
    assert.deepEqual(await thermostat.handle(command("thermostat.setTemperature", { celsius: 18 })), { result: { celsius: 18, setpoint: 18 } });
  });

  it("valve: opens until now + seconds, then closes", async () => {
    const valve = model({ model: "valve" });
    assert.deepEqual(await valve.handle(command("valve.open", { seconds: 90 })), { result: { open: true, closesAt: "2030-01-01T00:01:30.000Z" } });
    assert.deepEqual(await valve.handle(command("valve.close")), { result: { open: false } });
  });

  it("every model reboots", async () => {
    for (const name of ["thermostat", "valve", "meter"]) {
      assert.deepEqual(await model({ model: name }).handle(command("device.reboot")), { result: { rebootedAt: "2030-01-01T00:00:00.000Z" } });
    }
  });

  it("answers UNSUPPORTED for a type its model does not accept", async () => {
    const cases: [string, string][] = [
      ["thermostat", "valve.open"],
      ["valve", "thermostat.setTemperature"],
      ["meter", "valve.close"],
      ["thermostat", "toaster.toast"],
    ];
    for (const [name, type] of cases) {
      const outcome = await model({ model: name }).handle(command(type, { seconds: 1, celsius: 20 }));
      assert.ok("error" in outcome, `${name} ${type}`);
      assert.equal(outcome.error.code, "UNSUPPORTED");
    }
  });

  it("answers BAD_PAYLOAD for a payload it cannot act on", async () => {
    const thermostat = await model({ model: "thermostat" }).handle(command("thermostat.setTemperature", { celsius: "warm" }));
    const valve = await model({ model: "valve" }).handle(command("valve.open", { seconds: 1.5 }));
    assert.ok("error" in thermostat && "error" in valve);
    assert.equal(thermostat.error.code, "BAD_PAYLOAD");
    assert.equal(valve.error.code, "BAD_PAYLOAD");
  });

  it("fails with SIMULATED_FAILURE when the draw is below failRate, and leaves the state unchanged", async () => {
    const thermostat = model({ model: "thermostat", failRate: 0.3, random: draws(0.5, 0.29, 0.3) });
    assert.deepEqual(await thermostat.handle(command("thermostat.setTemperature", { celsius: 20 })), { result: { celsius: 20, setpoint: 20 } });
    const failed = await thermostat.handle(command("thermostat.setTemperature", { celsius: 30 }));
    assert.ok("error" in failed);
    assert.equal(failed.error.code, "SIMULATED_FAILURE");
    assert.deepEqual(await thermostat.handle(command("thermostat.setTemperature", { celsius: 25 })), { result: { celsius: 25, setpoint: 25 } });
  });

  it("drops a command when the draw is below dropRate, and never draws without one", () => {
    const dropping = model({ model: "valve", dropRate: 0.2, random: draws(0.1, 0.2) });
    assert.equal(dropping.drop(), true);
    assert.equal(dropping.drop(), false);
    assert.equal(model({ model: "valve" }).drop(), false);
  });

  it("waits a latency drawn from the range before answering", async () => {
    const slow = model({ model: "thermostat", latencyMs: [40, 140], random: draws(0.5) });
    const startedAt = performance.now();
    await slow.handle(command("device.reboot"));
    const elapsed = performance.now() - startedAt;
    assert.ok(elapsed >= 85 && elapsed < 1_000, `expected about 90 ms, waited ${elapsed.toFixed(0)} ms`);
  });
});
