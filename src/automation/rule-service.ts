import { randomUUID } from "node:crypto";
import { abilityOf, accessibleFilter, requireTenantScope, type Action } from "../authz/ability";
import type { Principal } from "../authz/principal";
import { accepts, type CommandCatalog } from "../catalog/catalog";
import type { CommandTypeDefinition } from "../catalog/command-types";
import type { Clock } from "../clock";
import { NAME_PATTERN } from "../devices/device-service";
import { badInput, GatewayError, notFound } from "../errors";
import { DEVICE_ID_PATTERN } from "../mqtt/topics";
import type { DeviceRepository } from "../store/device-repository";
import type { RuleRepository } from "../store/rule-repository";
import { validateCondition } from "./condition";
import type { EnabledRules } from "./enabled-rules";
import type { AutomationRule, RuleWithStats } from "./rule";

export interface CreateRuleRequest {
  name: string;
  site?: string | null;
  model?: string | null;
  deviceId?: string | null;
  when: unknown;
  commandType: string;
  commandPayload?: unknown;
  targetDeviceId?: string | null;
  cooldownSeconds?: number | null;
}

export const DEFAULT_COOLDOWN_SECONDS = 60;
export const MAX_COOLDOWN_SECONDS = 86_400;
const MAX_NAME_LENGTH = 100;

/** Automation rules: created and changed by admins, listed by every reader of the tenant. */
export class RuleService {
  constructor(
    private readonly rules: RuleRepository,
    private readonly devices: DeviceRepository,
    private readonly catalog: CommandCatalog,
    private readonly enabledRules: EnabledRules,
    private readonly clock: Clock,
  ) {}

  /**
   * Refuses, storing nothing: FORBIDDEN for non-admins; BAD_USER_INPUT with `field` (and a JSON pointer
   * into `when` or `commandPayload`) for anything that could never fire, including a target device
   * that is not in the caller's tenant (missing and foreign look the same).
   */
  async create(principal: Principal, request: CreateRuleRequest): Promise<RuleWithStats> {
    this.requireAllowed(principal, "create", "Only an admin may create rules");
    const name = request.name.trim();
    if (!name || name.length > MAX_NAME_LENGTH) throw badInput(`name must be 1 to ${MAX_NAME_LENGTH} characters`, { field: "name" });
    const site = request.site ?? undefined;
    const model = request.model ?? undefined;
    const deviceId = request.deviceId ?? undefined;
    const targetDeviceId = request.targetDeviceId ?? undefined;
    if (site !== undefined && !NAME_PATTERN.test(site)) throw badInput("site must be 1-64 letters, digits, '.', '_' or '-'", { field: "site" });
    if (model !== undefined && !NAME_PATTERN.test(model)) throw badInput("model must be 1-64 letters, digits, '.', '_' or '-'", { field: "model" });
    if (deviceId !== undefined && !DEVICE_ID_PATTERN.test(deviceId)) throw badInput("deviceId is not a valid device id", { field: "deviceId" });
    validateCondition(request.when);
    const cooldownSeconds = request.cooldownSeconds ?? DEFAULT_COOLDOWN_SECONDS;
    if (!Number.isInteger(cooldownSeconds) || cooldownSeconds < 1 || cooldownSeconds > MAX_COOLDOWN_SECONDS) {
      throw badInput(`cooldownSeconds must be between 1 and ${MAX_COOLDOWN_SECONDS}`, { field: "cooldownSeconds" });
    }

    const definition = this.catalog.find(request.commandType);
    if (!definition) throw badInput(`Unknown command type ${JSON.stringify(request.commandType)}`, { field: "commandType" });
    const commandPayload = this.validatePayload(request.commandType, request.commandPayload);
    if (targetDeviceId !== undefined) {
      const invalidTarget = badInput(`targetDeviceId ${JSON.stringify(targetDeviceId)} is not a device of your tenant`, { field: "targetDeviceId" });
      if (!DEVICE_ID_PATTERN.test(targetDeviceId)) throw invalidTarget;
      const target = await this.devices.findById(targetDeviceId, { tenant: principal.tenant });
      if (!target) throw invalidTarget;
      requireAccepted(definition, target.model, "the target device's model");
    } else {
      // The command goes to the device that sent the telemetry: check its model where the scope tells it.
      const scoped = deviceId === undefined ? null : await this.devices.findById(deviceId, { tenant: principal.tenant });
      if (scoped) requireAccepted(definition, scoped.model, `the model of device ${JSON.stringify(scoped.id)},`);
      else if (model !== undefined) requireAccepted(definition, model, "model");
    }

    const now = this.clock.now();
    const rule: AutomationRule = {
      id: randomUUID(),
      tenant: principal.tenant,
      name,
      enabled: true,
      site,
      model,
      deviceId,
      when: request.when,
      commandType: definition.name,
      commandPayload,
      targetDeviceId,
      cooldownSeconds,
      createdBy: principal.id,
      createdAt: now,
      updatedAt: now,
    };
    await this.rules.insert(rule);
    this.enabledRules.invalidate(rule.tenant);
    return { ...rule, fireCount: 0 };
  }

  /** The tenant's rules, oldest first; empty for callers that may not read rules. */
  async list(principal: Principal): Promise<RuleWithStats[]> {
    const scope = accessibleFilter(abilityOf(principal), "read", "AutomationRule");
    return scope ? this.rules.list(scope) : [];
  }

  async setEnabled(principal: Principal, id: string, enabled: boolean): Promise<RuleWithStats> {
    const scope = this.requireAllowed(principal, "update", "Only an admin may change rules");
    const rule = await this.rules.setEnabled(id, scope, enabled, this.clock.now());
    if (!rule) throw notFound("Rule", id);
    this.enabledRules.invalidate(rule.tenant);
    return rule;
  }

  async delete(principal: Principal, id: string): Promise<boolean> {
    const scope = this.requireAllowed(principal, "delete", "Only an admin may delete rules");
    if (!(await this.rules.delete(id, scope))) throw notFound("Rule", id);
    this.enabledRules.invalidate(principal.tenant);
    return true;
  }

  /** FORBIDDEN unless the principal may do `action` on its tenant's rules; returns the rules it may do it on. */
  private requireAllowed(principal: Principal, action: Action, message: string): Record<string, unknown> {
    return requireTenantScope(principal, action, "AutomationRule", message);
  }

  /** The catalog's check, with its error pointed at `commandPayload`. */
  private validatePayload(type: string, payload: unknown): Record<string, unknown> {
    try {
      return this.catalog.validatePayload(type, payload);
    } catch (error) {
      if (!(error instanceof GatewayError)) throw error;
      throw badInput(error.message.replace(/^payload/, "commandPayload"), { field: "commandPayload", pointer: String(error.details.pointer ?? "") });
    }
  }
}

function requireAccepted(definition: CommandTypeDefinition, model: string, whose: string): void {
  if (!accepts(definition, model)) {
    throw badInput(`Command type ${JSON.stringify(definition.name)} is not accepted by ${whose} ${JSON.stringify(model)}`, { field: "commandType" });
  }
}
