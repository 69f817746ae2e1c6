import type { Clock } from "../clock";
import { TtlCache } from "../common/ttl-cache";
import type { Logger } from "../logger";
import type { RuleRepository } from "../store/rule-repository";
import { compileCondition, type Telemetry } from "./condition";
import type { AutomationRule } from "./rule";

/**
 * How long a replica evaluates telemetry against its copy of a tenant's enabled rules before reading
 * them again: a rule created or enabled on another replica is picked up within this time. (Disabling
 * and deleting need no wait: every firing re-reads its rule from the store.)
 */
export const ENABLED_RULES_TTL_MS = 2_000;

export interface CompiledRule {
  rule: AutomationRule;
  matches(telemetry: Telemetry): boolean;
}

/** Each tenant's enabled rules with their conditions compiled, cached per replica: telemetry is hot, rules change rarely. */
export class EnabledRules {
  private readonly cache: TtlCache<string, CompiledRule[]>;

  constructor(
    private readonly rules: RuleRepository,
    clock: Clock,
    private readonly log: Logger,
    ttlMs = ENABLED_RULES_TTL_MS,
  ) {
    this.cache = new TtlCache(ttlMs, clock);
  }

  forTenant(tenant: string): Promise<CompiledRule[]> {
    return this.cache.get(tenant, () => this.load(tenant));
  }

  /** Called on this replica's own changes, so they apply here at once. */
  invalidate(tenant: string): void {
    this.cache.delete(tenant);
  }

  private async load(tenant: string): Promise<CompiledRule[]> {
    const compiled: CompiledRule[] = [];
    for (const rule of await this.rules.findEnabled(tenant)) {
      try {
        compiled.push({ rule, matches: compileCondition(rule.when) });
      } catch (error) {
        // Validated at creation; a stored condition that no longer passes is skipped, not guessed at.
        this.log.warn({ ruleId: rule.id, err: (error as Error).message }, "rule condition does not compile; rule skipped");
      }
    }
    return compiled;
  }
}
