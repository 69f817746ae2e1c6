import { AbilityBuilder, createMongoAbility, subject, type MongoAbility, type MongoQuery } from "@casl/ability";
import { rulesToCondition } from "@casl/ability/extra";
import { forbidden } from "../errors";
import type { Principal } from "./principal";

export type Action = "manage" | "read" | "send" | "retry" | "escalate" | "cancel" | "create" | "update" | "delete";
export type SubjectType = "Command" | "Device" | "Alert" | "AutomationRule" | "ApiKey" | "PayloadLimit" | "AlertWebhook" | "FleetCommand";
/** The attributes policies are written over; every subject carries its tenant. */
export interface SubjectFields {
  tenant: string;
  site?: string;
  deviceId?: string;
  type?: string;
  model?: string;
  issuedBy?: string;
  createdBy?: string;
}
type Conditions = MongoQuery;
/** CASL's untyped Mongo ability; `allows` and `accessibleFilter` below are the typed doors into it. */
export type AppAbility = MongoAbility;

const OPERATOR_COMMAND_ACTIONS: Action[] = ["read", "send", "retry", "escalate", "cancel"];

/**
 * The default policy of CONTRACT §2, the only place it is written. Every condition pins the tenant,
 * so no rule here can reach across tenants; sites narrow operators and viewers further.
 */
export function defineAbilityFor(principal: Principal): AppAbility {
  const { can, build } = new AbilityBuilder<AppAbility>(createMongoAbility);
  const tenant = principal.tenant;

  switch (principal.kind) {
    case "user": {
      const scope: Conditions = principal.sites ? { tenant, site: { $in: principal.sites } } : { tenant };
      for (const role of principal.roles) {
        if (role === "admin") {
          can("manage", ["Command", "Device", "Alert", "AutomationRule", "ApiKey", "PayloadLimit", "AlertWebhook", "FleetCommand"], { tenant });
        } else if (role === "operator") {
          can(OPERATOR_COMMAND_ACTIONS, "Command", scope);
          can("read", ["Device", "Alert"], scope);
          // A fleet command spans sites: each child is still authorised per device (outside its sites: skipped).
          can(["read", "create"], "FleetCommand", { tenant });
          can("update", "FleetCommand", { tenant, createdBy: principal.id });
          can("read", "AutomationRule", { tenant });
        } else {
          can("read", ["Command", "Device", "Alert"], scope);
          can("read", "AutomationRule", { tenant });
          can("read", "FleetCommand", { tenant });
        }
      }
      break;
    }
    case "apiKey":
      can(["read", "send"], "Command", { tenant, type: { $in: principal.commandTypes } });
      can("read", "Device", { tenant });
      break;
    case "rule":
      can("send", "Command", { tenant, type: principal.commandType });
      break;
  }
  return build();
}

const abilities = new WeakMap<Principal, AppAbility>();

/** The principal's ability, built once per principal object (one per request or connection). */
export function abilityOf(principal: Principal): AppAbility {
  let ability = abilities.get(principal);
  if (!ability) {
    ability = defineAbilityFor(principal);
    abilities.set(principal, ability);
  }
  return ability;
}

/** Checks an action on one concrete object, e.g. `allows(ability, "send", "Command", { tenant, site, type })`. */
export function allows(ability: AppAbility, action: Action, type: SubjectType, fields: SubjectFields): boolean {
  return ability.can(action, subject(type, { ...fields }));
}

/**
 * The ability as a MongoDB filter, so lists are filtered in the database and pages stay full.
 * `null` means nothing is readable.
 */
export function accessibleFilter(ability: AppAbility, action: Action, type: SubjectType): Record<string, unknown> | null {
  return rulesToCondition<AppAbility, Record<string, unknown>, Record<string, unknown>>(
    ability.rulesFor(action, type),
    (rule) => (rule.inverted ? { $nor: [rule.conditions ?? {}] } : (rule.conditions ?? {})) as Record<string, unknown>,
    { and: (conditions) => ({ $and: conditions }), or: (conditions) => ({ $or: conditions }), empty: () => ({}) },
  );
}

/**
 * FORBIDDEN (with `message`) unless the principal may do `action` on its own tenant's objects of
 * `type`; returns the objects it may do it on, as a filter.
 */
export function requireTenantScope(principal: Principal, action: Action, type: SubjectType, message: string): Record<string, unknown> {
  const ability = abilityOf(principal);
  const scope = accessibleFilter(ability, action, type);
  if (!scope || !allows(ability, action, type, { tenant: principal.tenant })) throw forbidden(message);
  return scope;
}
