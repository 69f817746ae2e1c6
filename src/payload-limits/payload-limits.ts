import type { ValidateFunction } from "ajv";
import type { Principal } from "../authz/principal";
import { describeValidationError } from "../catalog/catalog";
import type { CommandTypeDefinition } from "../catalog/command-types";
import type { Clock } from "../clock";
import { TtlCache } from "../common/ttl-cache";
import type { PayloadCheck, PayloadTarget } from "../commands/command-service";
import { forbidden } from "../errors";
import type { Logger } from "../logger";
import type { PayloadLimitRepository } from "../store/payload-limit-repository";
import { LimitValidators, narrowSchema } from "./limit-schema";
import { subjectsOf, type PayloadLimit } from "./payload-limit";

/**
 * How long a replica keeps a tenant's limits without hearing of a change. Changes are announced to
 * every replica over the event bus at once; this only bounds the damage of an announcement lost while
 * a replica was cut off from the broker.
 */
export const PAYLOAD_LIMITS_TTL_MS = 60_000;

interface CompiledLimit {
  limit: PayloadLimit;
  validate: ValidateFunction;
}

/**
 * Each tenant's payload limits, compiled and kept in memory per replica, so that checking a send
 * costs no store round trip: the check beside the CASL one in CommandService, for every source.
 */
export class PayloadLimits implements PayloadCheck {
  private readonly cache: TtlCache<string, CompiledLimit[]>;

  constructor(
    private readonly limits: PayloadLimitRepository,
    private readonly validators: LimitValidators,
    clock: Clock,
    private readonly log: Logger,
    ttlMs = PAYLOAD_LIMITS_TTL_MS,
  ) {
    this.cache = new TtlCache(ttlMs, clock);
  }

  /** FORBIDDEN, with a JSON pointer at the offending value, when the payload breaks a limit that applies. */
  async check(principal: Principal, target: PayloadTarget, payload: Record<string, unknown>): Promise<void> {
    for (const { limit, validate } of await this.applicable(principal, target.type, target.site)) {
      if (validate(payload)) continue;
      const { pointer, message } = describeValidationError(validate.errors![0]!);
      throw forbidden(`payload${pointer} ${message}: outside the payload limit for ${limit.subject}${limit.site ? ` at site ${limit.site}` : ""}`, {
        field: "payload",
        pointer,
      });
    }
  }

  /**
   * The type's payload schema narrowed by the limits that apply to the principal: those for every site,
   * and those for `site` when given.
   */
  async effectiveSchema(principal: Principal, definition: CommandTypeDefinition, site?: string): Promise<Record<string, unknown>> {
    const limits = await this.applicable(principal, definition.name, site);
    return narrowSchema(definition.payloadSchema as Record<string, unknown>, limits.map((l) => l.limit.schema));
  }

  /** The next check for the tenant reads its limits from the store again. */
  invalidate(tenant: string): void {
    this.cache.delete(tenant);
  }

  private async applicable(principal: Principal, type: string, site: string | undefined): Promise<CompiledLimit[]> {
    const subjects = subjectsOf(principal);
    const limits = await this.cache.get(principal.tenant, () => this.load(principal.tenant));
    return limits.filter(({ limit }) => limit.commandType === type && subjects.includes(limit.subject) && (limit.site === undefined || limit.site === site));
  }

  private async load(tenant: string): Promise<CompiledLimit[]> {
    const compiled: CompiledLimit[] = [];
    for (const limit of await this.limits.findByTenant(tenant)) {
      try {
        compiled.push({ limit, validate: this.validators.compile(limit.schema) });
      } catch (error) {
        // Compiled at set; a stored schema that no longer compiles refuses every payload rather than none.
        this.log.warn({ limitId: limit.id, err: (error as Error).message }, "payload limit does not compile; it refuses every payload");
        compiled.push({ limit, validate: refuseAll });
      }
    }
    return compiled;
  }
}

const refuseAll = Object.assign(() => false, {
  errors: [{ instancePath: "", keyword: "false schema", params: {}, schemaPath: "#", message: "is refused by a limit that no longer compiles" }],
}) as unknown as ValidateFunction;
