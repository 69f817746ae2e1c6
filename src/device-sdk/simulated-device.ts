import { setTimeout as sleep } from "node:timers/promises";
import { systemClock, type Clock } from "../clock";
import { DeviceClient, type CommandHandler, type CommandOutcome, type DeviceClientOptions, type DeviceCommand } from "./device-client";

export interface SimulationOptions {
  /** `thermostat`, `valve`, or any other model (which then only accepts `device.reboot`). */
  model: string;
  /** Handler latency, uniformly drawn from [min, max] ms. */
  latencyMs?: readonly [number, number];
  /** Probability that an accepted command fails with SIMULATED_FAILURE. */
  failRate?: number;
  /** Probability that a command is swallowed entirely: no DELIVERED, no final reply. */
  dropRate?: number;
  /** Source of randomness in [0, 1); inject a sequence to make a test deterministic. */
  random?: () => number;
  /** For the timestamps in results and for `expiresAt`. */
  clock?: Clock;
}

export type SimulatedDeviceOptions = SimulationOptions & Omit<DeviceClientOptions, "handler" | "drop" | "clock">;

type Executor = (payload: Record<string, unknown>) => CommandOutcome;

/**
 * The business logic of a simulated device of one model: the contract's command types, with state kept
 * between commands. Random draws happen in a fixed order per command (latency if a range is set, then
 * failure if failRate > 0), so an injected sequence gives a reproducible run.
 */
export class SimulatedModel {
  private setpoint: number | undefined;
  private valveOpen = false;
  private readonly random: () => number;
  private readonly clock: Clock;
  private readonly executors: ReadonlyMap<string, Executor>;

  constructor(private readonly options: SimulationOptions) {
    this.random = options.random ?? Math.random;
    this.clock = options.clock ?? systemClock;
    this.executors = new Map(this.executorsFor(options.model));
  }

  readonly handle: CommandHandler = async (command: DeviceCommand) => {
    const [min, max] = this.options.latencyMs ?? [0, 0];
    const latency = max > min ? min + this.random() * (max - min) : min;
    if (latency > 0) await sleep(latency);
    const execute = this.executors.get(command.type);
    if (!execute) return { error: { code: "UNSUPPORTED", message: `model ${this.options.model} does not support ${command.type}` } };
    const failRate = this.options.failRate ?? 0;
    if (failRate > 0 && this.random() < failRate) return { error: { code: "SIMULATED_FAILURE", message: "simulated failure" } };
    return execute(command.payload);
  };

  /** One draw per received command when a drop rate is set. */
  readonly drop = (): boolean => {
    const dropRate = this.options.dropRate ?? 0;
    return dropRate > 0 && this.random() < dropRate;
  };

  private executorsFor(model: string): [string, Executor][] {
    const reboot: [string, Executor] = ["device.reboot", () => ({ result: { rebootedAt: this.clock.now().toISOString() } })];
    switch (model) {
      case "thermostat":
        return [
          [
            "thermostat.setTemperature",
            ({ celsius }) => {
              if (typeof celsius !== "number" || !Number.isFinite(celsius)) return badPayload("celsius must be a number");
              this.setpoint = celsius;
              return { result: { celsius, setpoint: this.setpoint } };
            },
          ],
          reboot,
        ];
      case "valve":
        return [
          [
            "valve.open",
            ({ seconds }) => {
              if (typeof seconds !== "number" || !Number.isInteger(seconds) || seconds < 1) return badPayload("seconds must be a positive integer");
              this.valveOpen = true;
              return { result: { open: this.valveOpen, closesAt: new Date(this.clock.now().getTime() + seconds * 1000).toISOString() } };
            },
          ],
          [
            "valve.close",
            () => {
              this.valveOpen = false;
              return { result: { open: this.valveOpen } };
            },
          ],
          reboot,
        ];
      default:
        return [reboot];
    }
  }
}

function badPayload(message: string): CommandOutcome {
  return { error: { code: "BAD_PAYLOAD", message } };
}

/** A DeviceClient driven by a SimulatedModel; not connected until `start()`. */
export function createSimulatedDevice(options: SimulatedDeviceOptions): DeviceClient {
  const { model, latencyMs, failRate, dropRate, random, clock, ...clientOptions } = options;
  const simulation = new SimulatedModel({ model, latencyMs, failRate, dropRate, random, clock });
  return new DeviceClient({ ...clientOptions, clock, handler: simulation.handle, drop: simulation.drop });
}
