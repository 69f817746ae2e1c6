import { requireTenantScope, type Action } from "../authz/ability";
import type { Principal } from "../authz/principal";
import type { CommandCatalog } from "../catalog/catalog";
import type { Clock } from "../clock";
import { NAME_PATTERN } from "../devices/device-service";
import { badInput, notFound } from "../errors";
import type { PayloadLimitRepository } from "../store/payload-limit-repository";
import { checkLimitSchemaShape, checkSatisfiable, type LimitValidators } from "./limit-schema";
import { isValidSubject, payloadLimitId, type PayloadLimit } from "./payload-limit";
import type { PayloadLimits } from "./payload-limits";

export interface SetPayloadLimitRequest {
  subject: string;
  site?: string | null;
  commandType: string;
  schema: unknown;
}

/** Told of every change, so every replica drops its copy of the tenant's limits. */
export type PayloadLimitsChanged = (tenant: string) => void;

/** Payload limits: set, deleted and listed by the tenant's admins. */
export class PayloadLimitService {
  constructor(
    private readonly limits: PayloadLimitRepository,
    private readonly catalog: CommandCatalog,
    private readonly validators: LimitValidators,
    private readonly cache: PayloadLimits,
    private readonly changed: PayloadLimitsChanged,
    private readonly clock: Clock,
  ) {}

  /**
   * Stores the limit, replacing the one for the same (subject, site, command type). BAD_USER_INPUT with
   * `field` (and a JSON pointer into `schema`) for a limit that is malformed or could never be met.
   */
  async set(principal: Principal, request: SetPayloadLimitRequest): Promise<PayloadLimit> {
    this.requireAllowed(principal, "update", "Only an admin may set payload limits");
    if (!isValidSubject(request.subject)) {
      throw badInput('subject must be "role:admin", "role:operator", "role:viewer", "apikey:<id>" or "rule:<id>"', { field: "subject" });
    }
    const site = request.site ?? undefined;
    if (site !== undefined && !NAME_PATTERN.test(site)) throw badInput("site must be 1-64 letters, digits, '.', '_' or '-'", { field: "site" });
    const definition = this.catalog.find(request.commandType);
    if (!definition) throw badInput(`Unknown command type ${JSON.stringify(request.commandType)}`, { field: "commandType" });
    const schema = request.schema;
    checkLimitSchemaShape(schema);
    this.validators.compile(schema);
    checkSatisfiable(definition.name, definition.payloadSchema as Record<string, unknown>, schema, this.validators);

    const limit: PayloadLimit = {
      id: payloadLimitId(principal.tenant, request.subject, site, definition.name),
      tenant: principal.tenant,
      subject: request.subject,
      site,
      commandType: definition.name,
      schema,
      updatedBy: principal.id,
      updatedAt: this.clock.now(),
    };
    await this.limits.replace(limit);
    this.announce(limit.tenant);
    return limit;
  }

  async delete(principal: Principal, id: string): Promise<boolean> {
    const scope = this.requireAllowed(principal, "delete", "Only an admin may delete payload limits");
    if (!(await this.limits.delete(id, scope))) throw notFound("PayloadLimit", id);
    this.announce(principal.tenant);
    return true;
  }

  async list(principal: Principal): Promise<PayloadLimit[]> {
    return this.limits.list(this.requireAllowed(principal, "read", "Only an admin may list payload limits"));
  }

  /** This replica applies the change at once; the others when the announcement reaches them. */
  private announce(tenant: string): void {
    this.cache.invalidate(tenant);
    this.changed(tenant);
  }

  private requireAllowed(principal: Principal, action: Action, message: string): Record<string, unknown> {
    return requireTenantScope(principal, action, "PayloadLimit", message);
  }
}
