import type { CommandCatalog } from "../catalog/catalog";
import type { Clock } from "../clock";
import type { KeyedSerial } from "../common/keyed-serial";
import type { Command } from "../commands/command";
import type { CommandChange } from "../commands/lifecycle";
import type { Logger } from "../logger";
import type { DeviceRepository } from "../store/device-repository";
import type { ActiveCommandsView } from "./active-commands";
import type { Device, DeviceRef } from "./device";
import { ACTIVE_STATUSES, deriveState, MAX_REPORTED_BYTES, mergeReported, reportedByResult, telemetryState, type DerivedDeviceState, type StateObject } from "./device-state";

export type DeviceChangeListener = (device: DeviceRef) => void;

/**
 * Where a device's current reported state is read before a merge, and told of each write. The device
 * directory answers from memory when this process is the store's sole writer; with other replicas the
 * store is read (another replica may have written since).
 */
export interface ReportedStateSource {
  find(id: string): Promise<Device | null>;
  reportedChanged(id: string, reported: Record<string, unknown>, at: Date): void;
}

/**
 * A device's state (CONTRACT §6.2): `reported` kept on the device document, written through the
 * device's lane and only when it changes; `desired`, `inSync` and `pendingCommands` derived from its
 * active commands. Tells its listeners when any of it, or the device's presence, changes.
 */
export class DeviceStateService {
  private readonly listeners: DeviceChangeListener[] = [];
  /** One derivation per device object: a request (or a delivered event) asking for several fields pays once. */
  private readonly derived = new WeakMap<Device, Promise<DerivedDeviceState>>();

  constructor(
    private readonly devices: DeviceRepository,
    private readonly current: ReportedStateSource,
    private readonly activeCommands: ActiveCommandsView,
    private readonly catalog: CommandCatalog,
    /** The lane of the device's commands and presence: a state write is never lost to a concurrent one in this replica. */
    private readonly perDevice: KeyedSerial,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** Other replicas write too: each write is conditioned in the store on the stored state being older. */
    private readonly options: { storeHasOtherWriters: boolean },
  ) {}

  onChange(listener: DeviceChangeListener): void {
    this.listeners.push(listener);
  }

  derive(device: Device): Promise<DerivedDeviceState> {
    let state = this.derived.get(device);
    if (!state) {
      state = this.activeCommands.forDevice(device.id).then((active) => deriveState(active, device.reported ?? {}, (type) => this.catalog.find(type)));
      this.derived.set(device, state);
    }
    return state;
  }

  /** Lifecycle listener: a SUCCEEDED result's state fields go to `reported`; a command joining or leaving the active ones changes `desired`. */
  readonly onCommandChange = (command: Command, change: CommandChange): void => {
    if (change === "escalated") return;
    const activeChanged = change === "created" || change === "retry" || !ACTIVE_STATUSES.includes(command.status);
    const definition = this.catalog.find(command.type);
    const reported = change === "deviceSucceeded" && definition ? reportedByResult(definition, command.result) : {};
    // The state is as of the command's completion: a result applied late (another replica, a late reply) never undoes a newer one.
    if (Object.keys(reported).length) void this.report(command.deviceId, reported, activeChanged, command.completedAt ?? this.clock.now());
    else if (activeChanged) this.announce({ id: command.deviceId, tenant: command.tenant, site: command.site });
  };

  /** Merges a telemetry message's `state` object into `reported`; anything else there is ignored. */
  async recordTelemetry(deviceId: string, state: unknown): Promise<void> {
    const patch = telemetryState(state);
    if (!patch) {
      this.log.debug({ deviceId }, "telemetry state that is not an object of named values ignored");
      return;
    }
    await this.report(deviceId, patch, false, this.clock.now());
  }

  /** Subscribers hear of presence changes too. */
  presenceChanged(device: DeviceRef): void {
    this.announce(device);
  }

  /**
   * Writes what the patch changes, if anything, unless the stored state is newer than `at`; announces
   * the device if it changed or `announceAnyway`.
   */
  private report(deviceId: string, patch: StateObject, announceAnyway: boolean, at: Date): Promise<void> {
    return this.perDevice
      .run(deviceId, async () => {
        const device = await this.current.find(deviceId);
        if (!device) return;
        const newer = device.stateUpdatedAt !== undefined && device.stateUpdatedAt.getTime() > at.getTime();
        const change = newer ? null : mergeReported(device.reported ?? {}, patch);
        let written = false;
        if (change && Buffer.byteLength(JSON.stringify(change.merged)) > MAX_REPORTED_BYTES) {
          this.log.warn({ deviceId }, `reported state would exceed ${MAX_REPORTED_BYTES} bytes; report ignored`);
        } else if (change) {
          written = await this.devices.updateReported(deviceId, change.set, change.unset, at, { overOlderOnly: this.options.storeHasOtherWriters });
          if (written) this.current.reportedChanged(deviceId, change.merged, at);
        }
        if (written || announceAnyway) this.announce(device);
      })
      .catch((error) => this.log.warn({ deviceId, err: (error as Error).message }, "reported state not written"));
  }

  private announce({ id, tenant, site }: DeviceRef): void {
    for (const listener of this.listeners) listener({ id, tenant, site });
  }
}
