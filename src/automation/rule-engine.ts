import type { Principal } from "../authz/principal";
import type { Clock } from "../clock";
import type { CommandService } from "../commands/command-service";
import { KeyedSerial } from "../common/keyed-serial";
import type { Device } from "../devices/device";
import { GatewayError } from "../errors";
import type { Logger } from "../logger";
import type { Metrics } from "../observability/metrics";
import { inTrace, type TraceContext } from "../observability/tracing";
import type { RuleRepository } from "../store/rule-repository";
import type { Telemetry } from "./condition";
import type { EnabledRules } from "./enabled-rules";
import { rulePrincipalId, type AutomationRule } from "./rule";

export type FiringOutcome = "sent" | "refused" | "failed" | "cooldown" | "disabled";

/** Past this many remembered cooldowns, the expired ones are forgotten. */
const MAX_REMEMBERED_COOLDOWNS = 100_000;

/**
 * Matches telemetry against the enabled rules of the device's tenant and fires those that match:
 * at most once per cooldown per (rule, device) across replicas, through the one command path with the
 * rule as principal, so a rule can send only its own type within its own tenant.
 */
export class RuleEngine {
  /** One claim at a time per (rule, device) inside this replica. */
  private readonly perFiring = new KeyedSerial();
  /** One counter update at a time per rule inside this replica (FerretDB v1 loses concurrent ones). */
  private readonly perRule = new KeyedSerial();
  /**
   * When each (rule, device) may fire again, as far as this replica has learnt from the store: lets a
   * flood skip the store. Only ever "not before", never "now": the claim in the store decides.
   */
  private readonly notBefore = new Map<string, number>();

  constructor(
    private readonly rules: RuleRepository,
    private readonly enabledRules: EnabledRules,
    private readonly commands: CommandService,
    private readonly clock: Clock,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** Resolves when every matching rule has fired or been passed over; the commands join `trace` (the telemetry message's span). */
  async evaluate(device: Device, telemetry: Telemetry, trace?: TraceContext): Promise<void> {
    const rules = await this.enabledRules.forTenant(device.tenant);
    const firing: Array<Promise<void>> = [];
    for (const { rule, matches } of rules) {
      if (inScope(rule, device) && matches(telemetry)) firing.push(this.fire(rule, device, trace));
    }
    await Promise.all(firing);
  }

  private async fire(rule: AutomationRule, device: Device, trace: TraceContext): Promise<void> {
    const key = `${rule.id}/${device.id}`;
    if (this.inCooldown(key)) return this.count("cooldown");
    try {
      this.count(await this.perFiring.run(key, () => this.claimAndSend(key, rule, device, trace)));
    } catch (error) {
      // The store failed before anything was sent; the next matching telemetry tries again.
      inTrace(trace, () => this.log.warn({ ruleId: rule.id, deviceId: device.id, err: (error as Error).message }, "rule firing failed"));
      this.count("failed");
    }
  }

  private async claimAndSend(key: string, rule: AutomationRule, device: Device, trace: TraceContext): Promise<FiringOutcome> {
    if (this.inCooldown(key)) return "cooldown";
    // The store is the authority: a rule disabled or deleted on any replica stops here at once.
    const current = await this.rules.findById(rule.id, { enabled: true });
    if (!current) {
      this.enabledRules.invalidate(rule.tenant);
      return "disabled";
    }
    const now = this.clock.now();
    const cooldownMs = current.cooldownSeconds * 1000;
    const claim = await this.rules.claimFiring(current.id, device.id, now, cooldownMs);
    if (!claim.claimed) {
      this.remember(key, claim.lastFiredAt.getTime() + cooldownMs);
      return "cooldown";
    }
    this.remember(key, now.getTime() + cooldownMs);

    const principal: Principal = { kind: "rule", id: rulePrincipalId(current.id), tenant: current.tenant, commandType: current.commandType };
    let commandId: string;
    try {
      const request = { deviceId: current.targetDeviceId ?? device.id, type: current.commandType, payload: current.commandPayload };
      const command = await this.commands.send(principal, request, trace);
      commandId = command.id;
    } catch (error) {
      const refused = error instanceof GatewayError;
      const message = refused ? `${error.code}: ${error.message}` : `failed: ${(error as Error).message}`;
      inTrace(trace, () => this.log.warn({ ruleId: current.id, deviceId: device.id, err: message }, "rule matched but sent nothing"));
      await this.perRule.run(current.id, () => this.rules.recordError(current.id, message));
      return refused ? "refused" : "failed";
    }
    inTrace(trace, () => this.log.info({ ruleId: current.id, deviceId: device.id, commandId }, "rule fired"));
    await this.perRule
      .run(current.id, () => this.rules.recordSent(current.id, now))
      .catch((error) => this.log.warn({ ruleId: current.id, err: (error as Error).message }, "rule fired; its fireCount was not updated"));
    return "sent";
  }

  private inCooldown(key: string): boolean {
    return (this.notBefore.get(key) ?? 0) > this.clock.now().getTime();
  }

  private remember(key: string, notBefore: number): void {
    if (this.notBefore.size >= MAX_REMEMBERED_COOLDOWNS) {
      const now = this.clock.now().getTime();
      for (const [k, until] of this.notBefore) if (until <= now) this.notBefore.delete(k);
      if (this.notBefore.size >= MAX_REMEMBERED_COOLDOWNS) this.notBefore.clear();
    }
    this.notBefore.set(key, notBefore);
  }

  private count(outcome: FiringOutcome): void {
    this.metrics.ruleFirings.inc({ outcome });
  }
}

function inScope(rule: AutomationRule, device: Device): boolean {
  return (
    (rule.site === undefined || rule.site === device.site) &&
    (rule.model === undefined || rule.model === device.model) &&
    (rule.deviceId === undefined || rule.deviceId === device.id)
  );
}
