import { abilityOf, accessibleFilter, allows } from "../authz/ability";
import type { Principal } from "../authz/principal";
import type { Clock } from "../clock";
import { decodeCursor, encodeCursor, pageSize, toPage, type Page } from "../common/pagination";
import { badInput, conflict, forbidden } from "../errors";
import { DEVICE_ID_PATTERN } from "../mqtt/topics";
import type { DeviceRepository } from "../store/device-repository";
import type { Device } from "./device";

export interface RegisterDeviceRequest {
  id: string;
  site: string;
  model: string;
}

/** Site and model names. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Device registry: registration by admins, reads filtered by the caller's ability. */
export class DeviceService {
  private readonly registeredListeners: Array<(device: Device) => void> = [];

  constructor(
    private readonly devices: DeviceRepository,
    private readonly clock: Clock,
  ) {}

  async register(principal: Principal, request: RegisterDeviceRequest): Promise<Device> {
    if (!DEVICE_ID_PATTERN.test(request.id)) {
      throw badInput("id must be 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit", { field: "id" });
    }
    if (!NAME_PATTERN.test(request.site)) throw badInput("site must be 1-64 letters, digits, '.', '_' or '-'", { field: "site" });
    if (!NAME_PATTERN.test(request.model)) throw badInput("model must be 1-64 letters, digits, '.', '_' or '-'", { field: "model" });
    const device: Device = { ...request, tenant: principal.tenant, online: false, createdAt: this.clock.now() };
    if (!allows(abilityOf(principal), "create", "Device", device)) throw forbidden("Only an admin may register devices");
    if (!(await this.devices.insert(device))) throw conflict(`Device id ${JSON.stringify(request.id)} is already registered`, { field: "id" });
    for (const listener of this.registeredListeners) listener(device);
    return device;
  }

  /** Called after each registration in this process, e.g. to let the device into the embedded broker. */
  onRegistered(listener: (device: Device) => void): void {
    this.registeredListeners.push(listener);
  }

  async get(principal: Principal, id: string): Promise<Device | null> {
    const scope = accessibleFilter(abilityOf(principal), "read", "Device");
    return scope ? this.devices.findById(id, scope) : null;
  }

  /** The device as stored, for an event the subscriber's ability was already checked against. */
  current(id: string): Promise<Device | null> {
    return this.devices.findById(id);
  }

  async list(principal: Principal, request: { site?: string | null; first?: number | null; after?: string | null }): Promise<Page<Device>> {
    const size = pageSize(request.first);
    const after = request.after ? decodeCursor<[string]>(request.after, ["string"])[0] : undefined;
    const scope = accessibleFilter(abilityOf(principal), "read", "Device");
    const cursorOf = (d: Device) => encodeCursor([d.id]);
    if (!scope) return toPage([], size, cursorOf);
    return toPage(await this.devices.list(scope, request.site ?? undefined, size + 1, after), size, cursorOf);
  }
}
