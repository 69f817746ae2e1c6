import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CommandCatalog } from "../../src/catalog/catalog";
import type { Command } from "../../src/commands/command";
import { deriveState, mergeReported, reportedByResult, telemetryState } from "../../src/devices/device-state";

const catalog = new CommandCatalog();
const definitionOf = (type: string) => catalog.find(type);
let clock = 0;
const command = (type: string, payload: Record<string, unknown> = {}): Command =>
  ({ id: `c${clock}`, type, payload, status: "QUEUED", createdAt: new Date(++clock) }) as Command;

describe("device state: desired, inSync, pendingCommands", () => {
  it("the newest active command wins per key; a type that sets nothing adds nothing", () => {
    const older = command("thermostat.setTemperature", { celsius: 20 });
    const newer = command("thermostat.setTemperature", { celsius: 22 });
    const reboot = command("device.reboot");
    const state = deriveState([newer, reboot, older], {}, definitionOf);
    assert.deepEqual(state, { desired: { setpoint: 22 }, inSync: false, pendingCommands: 3 });
    assert.equal(deriveState([older, newer], { setpoint: 22, mode: "eco" }, definitionOf).inSync, true);
    assert.deepEqual(deriveState([reboot], {}, definitionOf), { desired: {}, inSync: true, pendingCommands: 1 });
  });

  it("valve commands set constants", () => {
    assert.deepEqual(deriveState([command("valve.open", { seconds: 5 })], { open: false }, definitionOf).desired, { open: true });
    assert.deepEqual(deriveState([command("valve.open", { seconds: 5 }), command("valve.close")], {}, definitionOf).desired, { open: false });
  });
});

describe("device state: reported", () => {
  it("takes only the fields the type reports from a result", () => {
    assert.deepEqual(reportedByResult(definitionOf("thermostat.setTemperature")!, { celsius: 22, setpoint: 22 }), { setpoint: 22 });
    assert.deepEqual(reportedByResult(definitionOf("valve.open")!, { open: true, closesAt: "later" }), { open: true });
    assert.deepEqual(reportedByResult(definitionOf("device.reboot")!, { rebootedAt: "now" }), {});
    assert.deepEqual(reportedByResult(definitionOf("thermostat.setTemperature")!, undefined), {});
  });

  it("a merge that changes nothing is null (no write); null removes a key", () => {
    assert.equal(mergeReported({ setpoint: 22, probe: { t: 1 } }, { setpoint: 22, probe: { t: 1 } }), null);
    assert.equal(mergeReported({}, { gone: null }), null);
    assert.deepEqual(mergeReported({ setpoint: 22, mode: "eco" }, { setpoint: 23, mode: null, fan: true }), {
      set: { setpoint: 23, fan: true },
      unset: ["mode"],
      merged: { setpoint: 23, fan: true },
    });
  });

  it("a telemetry state must be an object of named values", () => {
    assert.deepEqual(telemetryState({ humidity: 40 }), { humidity: 40 });
    for (const bad of [null, 3, "on", [1], {}, { "": 1 }, { ["k".repeat(129)]: 1 }]) assert.equal(telemetryState(bad), null, JSON.stringify(bad));
  });
});
