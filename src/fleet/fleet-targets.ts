import { abilityOf, allows } from "../authz/ability";
import type { Principal } from "../authz/principal";
import { accepts, type CommandCatalog } from "../catalog/catalog";
import type { PayloadCheck } from "../commands/command-service";
import type { Device } from "../devices/device";
import type { DeviceDirectory } from "../devices/device-directory";
import { GatewayError } from "../errors";
import { TARGET_CHUNK_SIZE, type FleetCommand, type SkippedDevice, type TargetChunk } from "./fleet-command";

export interface ResolvedTarget {
  chunks: TargetChunk[];
  targeted: number;
  sendable: number;
  skipped: number;
}

/**
 * Resolves a fleet command's target once, when it starts: the devices of the tenant that match it
 * (from the in-memory device directory), each checked as CommandService checks a send (CASL for the
 * creator, the model, the payload limits), so what is refused here is skipped with its reason rather
 * than sent and refused.
 */
export class FleetTargets {
  constructor(
    private readonly devices: DeviceDirectory,
    private readonly catalog: CommandCatalog,
    private readonly payloadLimits: PayloadCheck,
  ) {}

  async resolve(principal: Principal, fleet: Pick<FleetCommand, "tenant" | "target" | "type" | "payload">): Promise<ResolvedTarget> {
    const definition = this.catalog.find(fleet.type);
    const ability = abilityOf(principal);
    const chunks: TargetChunk[] = [];
    let chunk: TargetChunk = { deviceIds: [], skipped: [] };
    let targeted = 0;
    let sendable = 0;
    for (const device of await this.matching(fleet)) {
      targeted++;
      const reason = await this.refusal(principal, ability, device, fleet, definition !== undefined && accepts(definition, device.model));
      if (reason) chunk.skipped.push({ deviceId: device.id, reason });
      else {
        chunk.deviceIds.push(device.id);
        sendable++;
      }
      if (chunk.deviceIds.length + chunk.skipped.length === TARGET_CHUNK_SIZE) {
        chunks.push(chunk);
        chunk = { deviceIds: [], skipped: [] };
      }
    }
    if (chunk.deviceIds.length + chunk.skipped.length > 0) chunks.push(chunk);
    return { chunks, targeted, sendable, skipped: targeted - sendable };
  }

  /** In the given order for an explicit list, by id otherwise (a stable rollout order). */
  private async matching({ tenant, target }: Pick<FleetCommand, "tenant" | "target">): Promise<Device[]> {
    const matches = (d: Device | null | undefined): d is Device =>
      !!d && d.tenant === tenant && (target.site === undefined || d.site === target.site) && (target.model === undefined || d.model === target.model);
    if (target.deviceIds) return (await Promise.all([...new Set(target.deviceIds)].map((id) => this.devices.find(id)))).filter(matches);
    return [...this.devices.all()].filter(matches).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  private async refusal(
    principal: Principal,
    ability: ReturnType<typeof abilityOf>,
    device: Device,
    fleet: Pick<FleetCommand, "type" | "payload">,
    modelTakesType: boolean,
  ): Promise<SkippedDevice["reason"] | undefined> {
    const fields = { tenant: device.tenant, site: device.site, deviceId: device.id, type: fleet.type, model: device.model };
    if (!allows(ability, "send", "Command", fields)) return `FORBIDDEN: not allowed to send ${fleet.type} to this device (site ${device.site})`;
    if (!modelTakesType) return `MODEL: model ${device.model} does not take ${fleet.type}`;
    try {
      await this.payloadLimits.check(principal, fields, fleet.payload);
      return undefined;
    } catch (error) {
      if (error instanceof GatewayError) return `PAYLOAD_LIMIT: ${error.message}`;
      throw error;
    }
  }
}
