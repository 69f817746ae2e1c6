import type { Clock } from "../clock";
import { exceedsDepth, MAX_JSON_DEPTH } from "../common/json-shape";
import { TtlCache } from "../common/ttl-cache";
import type { Device } from "../devices/device";
import type { DeviceStateService } from "../devices/device-state-service";
import type { Logger } from "../logger";
import type { Metrics } from "../observability/metrics";
import { inTrace, type TraceContext } from "../observability/tracing";
import type { DeviceRepository } from "../store/device-repository";
import type { Telemetry } from "./condition";
import { ENABLED_RULES_TTL_MS } from "./enabled-rules";
import type { RuleEngine } from "./rule-engine";

/** Largest telemetry message evaluated; devices report readings, not files. */
export const MAX_TELEMETRY_BYTES = 64 * 1024;

export type TelemetryOutcome = "evaluated" | "oversized" | "malformed" | "not_object" | "unregistered_device" | "failed";

/**
 * Telemetry from `{p}/devices/{id}/telemetry` (CONTRACT §5) into the rule engine, and its `state`
 * object into the device's reported state (§6.2). Only a JSON object from a registered device, at most
 * MAX_JSON_DEPTH levels deep, is evaluated; anything else is dropped and counted by reason.
 */
export class TelemetryIngest {
  /** Registered devices (and unknown ids, as null), so a flood does not read the registry per message. */
  private readonly devices: TtlCache<string, Device | null>;

  constructor(
    private readonly deviceRepository: DeviceRepository,
    private readonly engine: RuleEngine,
    private readonly deviceState: DeviceStateService,
    clock: Clock,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.devices = new TtlCache(ENABLED_RULES_TTL_MS, clock, 100_000);
  }

  /** Resolves once the message has been evaluated and every rule it triggered has fired; `trace`: the message's span. */
  async handle(deviceId: string, payload: Buffer, trace?: TraceContext): Promise<TelemetryOutcome> {
    let outcome: TelemetryOutcome;
    try {
      outcome = await this.evaluate(deviceId, payload, trace);
    } catch (error) {
      inTrace(trace, () => this.log.warn({ deviceId, err: (error as Error).message }, "telemetry not evaluated"));
      outcome = "failed";
    }
    if (outcome !== "evaluated") this.metrics.telemetryDropped.inc({ reason: outcome });
    this.metrics.telemetryMessages.inc();
    return outcome;
  }

  private async evaluate(deviceId: string, payload: Buffer, trace: TraceContext): Promise<TelemetryOutcome> {
    if (payload.length > MAX_TELEMETRY_BYTES) return "oversized";
    let telemetry: unknown;
    try {
      telemetry = JSON.parse(payload.toString("utf8"));
    } catch {
      return "malformed";
    }
    if (typeof telemetry !== "object" || telemetry === null || Array.isArray(telemetry)) return "not_object";
    // Readings are a few levels deep; anything recursive downstream (state merging, the store) must not overflow.
    if (exceedsDepth(telemetry, MAX_JSON_DEPTH)) return "malformed";
    const device = await this.devices.get(deviceId, () => this.deviceRepository.findById(deviceId));
    if (!device) return "unregistered_device";
    const { state } = telemetry as Telemetry;
    await Promise.all([this.engine.evaluate(device, telemetry as Telemetry, trace), state === undefined ? undefined : this.deviceState.recordTelemetry(device.id, state)]);
    return "evaluated";
  }
}
