import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { abilityOf, accessibleFilter, allows, defineAbilityFor, type Action, type SubjectFields, type SubjectType } from "../../src/authz/ability";
import type { Principal } from "../../src/authz/principal";

// ---- principals (CONTRACT §2) ----
const admin: Principal = { kind: "user", id: "u-admin", tenant: "acme", roles: ["admin"] };
const operatorS1: Principal = { kind: "user", id: "u-op1", tenant: "acme", roles: ["operator"], sites: ["s1"] };
const operatorS1S2: Principal = { kind: "user", id: "u-op12", tenant: "acme", roles: ["operator"], sites: ["s1", "s2"] };
const operatorAll: Principal = { kind: "user", id: "u-opall", tenant: "acme", roles: ["operator"] };
const operatorNoSites: Principal = { kind: "user", id: "u-op0", tenant: "acme", roles: ["operator"], sites: [] };
const viewerS1: Principal = { kind: "user", id: "u-view1", tenant: "acme", roles: ["viewer"], sites: ["s1"] };
const viewerAll: Principal = { kind: "user", id: "u-viewall", tenant: "acme", roles: ["viewer"] };
const viewerAndOperator: Principal = { kind: "user", id: "u-mixed", tenant: "acme", roles: ["viewer", "operator"], sites: ["s2"] };
const noRoles: Principal = { kind: "user", id: "u-none", tenant: "acme", roles: [] };
const apiKey: Principal = { kind: "apiKey", id: "key-1", tenant: "acme", commandTypes: ["valve.open", "valve.close"] };
const rule: Principal = { kind: "rule", id: "rule:r1", tenant: "acme", commandType: "valve.close" };

// ---- subjects ----
const cmd = (tenant: string, site: string, type = "valve.open"): SubjectFields => ({ tenant, site, deviceId: `${site}-dev`, type, issuedBy: "someone" });
const device = (tenant: string, site: string): SubjectFields => ({ tenant, site, deviceId: `${site}-dev`, model: "valve" });
const alert = (tenant: string, site: string): SubjectFields => ({ tenant, site, deviceId: `${site}-dev` });
const tenantOnly = (tenant: string): SubjectFields => ({ tenant });

const ALL_ACTIONS: Action[] = ["manage", "read", "send", "retry", "escalate", "cancel", "create", "update", "delete"];
const ALL_TYPES: SubjectType[] = ["Command", "Device", "Alert", "AutomationRule", "ApiKey"];
const OPERATOR_COMMAND_ACTIONS: Action[] = ["read", "send", "retry", "escalate", "cancel"];

const sampleOf = (type: SubjectType, tenant: string, site: string): SubjectFields =>
  type === "Command" ? cmd(tenant, site) : type === "Device" ? device(tenant, site) : type === "Alert" ? alert(tenant, site) : tenantOnly(tenant);

type Case = [label: string, principal: Principal, action: Action, type: SubjectType, fields: SubjectFields, allowed: boolean];

const cases: Case[] = [];

// admin: manages everything in its tenant, nothing in another
for (const type of ALL_TYPES) {
  for (const action of ALL_ACTIONS) {
    cases.push(["admin", admin, action, type, sampleOf(type, "acme", "s9"), true]);
    cases.push(["admin, other tenant", admin, action, type, sampleOf(type, "globex", "s9"), false]);
  }
}

// operator with sites [s1]
for (const action of OPERATOR_COMMAND_ACTIONS) {
  cases.push(["operator s1, own site", operatorS1, action, "Command", cmd("acme", "s1"), true]);
  cases.push(["operator s1, other site", operatorS1, action, "Command", cmd("acme", "s2"), false]);
  cases.push(["operator s1, other tenant same site name", operatorS1, action, "Command", cmd("globex", "s1"), false]);
  cases.push(["operator (all sites)", operatorAll, action, "Command", cmd("acme", "s2"), true]);
  cases.push(["operator (all sites), other tenant", operatorAll, action, "Command", cmd("globex", "s2"), false]);
  cases.push(["operator s1+s2, second site", operatorS1S2, action, "Command", cmd("acme", "s2"), true]);
  cases.push(["operator s1+s2, third site", operatorS1S2, action, "Command", cmd("acme", "s3"), false]);
  cases.push(["operator with sites=[] (no site at all)", operatorNoSites, action, "Command", cmd("acme", "s1"), false]);
}
cases.push(
  ["operator: any command type", operatorS1, "send", "Command", cmd("acme", "s1", "thermostat.setTemperature"), true],
  ["operator: command without site, sites claim present", operatorS1, "read", "Command", { tenant: "acme" }, false],
  ["operator: no manage on Command", operatorAll, "manage", "Command", cmd("acme", "s1"), false],
  ["operator: no create on Command", operatorAll, "create", "Command", cmd("acme", "s1"), false],
  ["operator: no update on Command", operatorAll, "update", "Command", cmd("acme", "s1"), false],
  ["operator: no delete on Command", operatorAll, "delete", "Command", cmd("acme", "s1"), false],
  ["operator reads Device in scope", operatorS1, "read", "Device", device("acme", "s1"), true],
  ["operator reads Device out of site", operatorS1, "read", "Device", device("acme", "s2"), false],
  ["operator (all sites) reads Device", operatorAll, "read", "Device", device("acme", "s7"), true],
  ["operator reads Device other tenant", operatorAll, "read", "Device", device("globex", "s1"), false],
  ["operator cannot create Device", operatorAll, "create", "Device", device("acme", "s1"), false],
  ["operator cannot create Device (site-scoped)", operatorS1, "create", "Device", device("acme", "s1"), false],
  ["operator cannot update Device", operatorAll, "update", "Device", device("acme", "s1"), false],
  ["operator cannot delete Device", operatorAll, "delete", "Device", device("acme", "s1"), false],
  ["operator reads Alert in scope", operatorS1, "read", "Alert", alert("acme", "s1"), true],
  ["operator reads Alert out of site", operatorS1, "read", "Alert", alert("acme", "s2"), false],
  ["operator reads Alert other tenant", operatorAll, "read", "Alert", alert("globex", "s1"), false],
  ["operator reads AutomationRule", operatorS1, "read", "AutomationRule", tenantOnly("acme"), true],
  ["operator reads AutomationRule other tenant", operatorS1, "read", "AutomationRule", tenantOnly("globex"), false],
  ["operator cannot create AutomationRule", operatorAll, "create", "AutomationRule", tenantOnly("acme"), false],
  ["operator cannot delete AutomationRule", operatorAll, "delete", "AutomationRule", tenantOnly("acme"), false],
  ["operator cannot update AutomationRule", operatorAll, "update", "AutomationRule", tenantOnly("acme"), false],
);
for (const action of ALL_ACTIONS) cases.push(["operator cannot touch ApiKey", operatorAll, action, "ApiKey", tenantOnly("acme"), false]);

// viewer: reads only
for (const [label, p] of [["viewer s1", viewerS1], ["viewer (all sites)", viewerAll]] as const) {
  cases.push(
    [`${label} reads Command`, p, "read", "Command", cmd("acme", "s1"), true],
    [`${label} reads Device`, p, "read", "Device", device("acme", "s1"), true],
    [`${label} reads Alert`, p, "read", "Alert", alert("acme", "s1"), true],
    [`${label} reads AutomationRule`, p, "read", "AutomationRule", tenantOnly("acme"), true],
    [`${label} reads nothing of another tenant (Command)`, p, "read", "Command", cmd("globex", "s1"), false],
    [`${label} reads nothing of another tenant (Device)`, p, "read", "Device", device("globex", "s1"), false],
    [`${label} reads nothing of another tenant (Alert)`, p, "read", "Alert", alert("globex", "s1"), false],
  );
  for (const action of ALL_ACTIONS.filter((a) => a !== "read")) {
    for (const type of ALL_TYPES) cases.push([`${label} cannot ${action}`, p, action, type, sampleOf(type, "acme", "s1"), false]);
  }
}
cases.push(
  ["viewer s1 cannot read Command of another site", viewerS1, "read", "Command", cmd("acme", "s2"), false],
  ["viewer (all sites) reads Command of any site", viewerAll, "read", "Command", cmd("acme", "s2"), true],
);

// a user with several roles gets the union
cases.push(
  ["viewer+operator s2: sends in s2", viewerAndOperator, "send", "Command", cmd("acme", "s2"), true],
  ["viewer+operator s2: not in s1", viewerAndOperator, "send", "Command", cmd("acme", "s1"), false],
  ["viewer+operator s2: no create Device", viewerAndOperator, "create", "Device", device("acme", "s2"), false],
);
// a user without roles can do nothing
for (const type of ALL_TYPES) cases.push(["no roles", noRoles, "read", type, sampleOf(type, "acme", "s1"), false]);

// api key: reads and sends its own command types within its tenant, reads devices
cases.push(
  ["apiKey sends its type", apiKey, "send", "Command", cmd("acme", "s1", "valve.open"), true],
  ["apiKey sends its other type, any site", apiKey, "send", "Command", cmd("acme", "s9", "valve.close"), true],
  ["apiKey reads its type", apiKey, "read", "Command", cmd("acme", "s1", "valve.close"), true],
  ["apiKey cannot send another type", apiKey, "send", "Command", cmd("acme", "s1", "thermostat.setTemperature"), false],
  ["apiKey cannot read another type", apiKey, "read", "Command", cmd("acme", "s1", "device.reboot"), false],
  ["apiKey cannot send in another tenant", apiKey, "send", "Command", cmd("globex", "s1", "valve.open"), false],
  ["apiKey cannot read in another tenant", apiKey, "read", "Command", cmd("globex", "s1", "valve.open"), false],
  ["apiKey cannot retry", apiKey, "retry", "Command", cmd("acme", "s1", "valve.open"), false],
  ["apiKey cannot escalate", apiKey, "escalate", "Command", cmd("acme", "s1", "valve.open"), false],
  ["apiKey cannot cancel", apiKey, "cancel", "Command", cmd("acme", "s1", "valve.open"), false],
  ["apiKey reads Device", apiKey, "read", "Device", device("acme", "s1"), true],
  ["apiKey reads no Device of another tenant", apiKey, "read", "Device", device("globex", "s1"), false],
  ["apiKey cannot create Device", apiKey, "create", "Device", device("acme", "s1"), false],
  ["apiKey cannot create ApiKey", apiKey, "create", "ApiKey", tenantOnly("acme"), false],
  ["apiKey cannot read ApiKey", apiKey, "read", "ApiKey", tenantOnly("acme"), false],
  ["apiKey cannot create AutomationRule", apiKey, "create", "AutomationRule", tenantOnly("acme"), false],
);

// automation rule: sends only its commandType in its tenant, reads nothing
cases.push(
  ["rule sends its type", rule, "send", "Command", cmd("acme", "s1", "valve.close"), true],
  ["rule sends its type, any site", rule, "send", "Command", cmd("acme", "s5", "valve.close"), true],
  ["rule cannot send another type", rule, "send", "Command", cmd("acme", "s1", "valve.open"), false],
  ["rule cannot send in another tenant", rule, "send", "Command", cmd("globex", "s1", "valve.close"), false],
  ["rule cannot retry", rule, "retry", "Command", cmd("acme", "s1", "valve.close"), false],
  ["rule cannot cancel", rule, "cancel", "Command", cmd("acme", "s1", "valve.close"), false],
  ["rule cannot create Device", rule, "create", "Device", device("acme", "s1"), false],
);
for (const type of ALL_TYPES) cases.push(["rule reads nothing", rule, "read", type, sampleOf(type, "acme", "s1"), false]);

describe("policy table (CONTRACT §2)", () => {
  for (const [label, principal, action, type, fields, allowed] of cases) {
    it(`${label}: ${action} ${type} ${JSON.stringify(fields)} → ${allowed ? "allowed" : "refused"}`, () => {
      assert.equal(allows(abilityOf(principal), action, type, fields), allowed);
    });
  }
});

describe("abilityOf", () => {
  it("builds the ability once per principal object", () => {
    assert.equal(abilityOf(operatorS1), abilityOf(operatorS1));
    assert.notEqual(abilityOf({ ...operatorS1 }), abilityOf(operatorS1));
  });

  it("agrees with defineAbilityFor", () => {
    assert.equal(allows(defineAbilityFor(operatorS1), "send", "Command", cmd("acme", "s1")), true);
    assert.equal(allows(defineAbilityFor(operatorS1), "send", "Command", cmd("acme", "s2")), false);
  });

  it("allows does not mutate the fields passed in", () => {
    const fields = cmd("acme", "s1");
    const copy = { ...fields };
    allows(abilityOf(operatorS1), "read", "Command", fields);
    assert.deepEqual(fields, copy);
    assert.deepEqual(Object.getOwnPropertyNames(fields).sort(), Object.keys(copy).sort());
  });
});

// ---- accessibleFilter ----

/** A minimal MongoDB query evaluator: $and, $or, $nor, $in, $nin, $eq, $ne and field equality; anything else fails the test. */
function matches(doc: Record<string, unknown>, filter: Record<string, unknown>): boolean {
  return Object.entries(filter).every(([key, condition]) => {
    switch (key) {
      case "$and":
        return (condition as Record<string, unknown>[]).every((f) => matches(doc, f));
      case "$or":
        return (condition as Record<string, unknown>[]).some((f) => matches(doc, f));
      case "$nor":
        return !(condition as Record<string, unknown>[]).some((f) => matches(doc, f));
      default:
        if (key.startsWith("$")) throw new Error(`matcher: unsupported top-level operator ${key}`);
        return fieldMatches(doc[key], condition);
    }
  });
}

function fieldMatches(value: unknown, condition: unknown): boolean {
  const isOperatorObject =
    condition !== null && typeof condition === "object" && !Array.isArray(condition) && Object.keys(condition).length > 0 && Object.keys(condition).every((k) => k.startsWith("$"));
  if (!isOperatorObject) return equal(value, condition);
  return Object.entries(condition as Record<string, unknown>).every(([op, arg]) => {
    switch (op) {
      case "$eq":
        return equal(value, arg);
      case "$ne":
        return !equal(value, arg);
      case "$in":
        return (arg as unknown[]).some((a) => equal(value, a));
      case "$nin":
        return !(arg as unknown[]).some((a) => equal(value, a));
      default:
        throw new Error(`matcher: unsupported operator ${op}`);
    }
  });
}

function equal(value: unknown, expected: unknown): boolean {
  if (Array.isArray(value)) return value.some((v) => equal(v, expected)) || JSON.stringify(value) === JSON.stringify(expected);
  if (expected === null) return value === null || value === undefined;
  return value === expected;
}

describe("the in-test matcher itself", () => {
  it("evaluates the operators it claims to", () => {
    const doc = { tenant: "acme", site: "s1", type: "valve.open" };
    assert.equal(matches(doc, {}), true);
    assert.equal(matches(doc, { tenant: "acme" }), true);
    assert.equal(matches(doc, { tenant: "globex" }), false);
    assert.equal(matches(doc, { site: { $in: ["s1", "s2"] } }), true);
    assert.equal(matches(doc, { site: { $in: ["s2"] } }), false);
    assert.equal(matches(doc, { $or: [{ tenant: "globex" }, { site: "s1" }] }), true);
    assert.equal(matches(doc, { $and: [{ tenant: "acme" }, { site: "s2" }] }), false);
    assert.equal(matches(doc, { $nor: [{ site: "s1" }] }), false);
    assert.throws(() => matches(doc, { site: { $regex: "s" } }));
  });
});

const tenants = ["acme", "globex"];
const sites = ["s1", "s2", "s3"];
const types = ["valve.open", "valve.close", "thermostat.setTemperature", "device.reboot"];
const sampleCommands = tenants.flatMap((tenant) =>
  sites.flatMap((site) => types.map((type) => ({ id: `${tenant}/${site}/${type}`, tenant, site, deviceId: `${site}-dev`, type, issuedBy: "someone" }))),
);
const sampleDevices = tenants.flatMap((tenant) => sites.map((site) => ({ id: `${tenant}/${site}`, tenant, site, deviceId: `${site}-dev`, model: "valve" })));

const everybody: Array<[string, Principal]> = [
  ["admin", admin],
  ["operator s1", operatorS1],
  ["operator s1+s2", operatorS1S2],
  ["operator all sites", operatorAll],
  ["operator sites=[]", operatorNoSites],
  ["viewer s1", viewerS1],
  ["viewer all sites", viewerAll],
  ["viewer+operator s2", viewerAndOperator],
  ["api key", apiKey],
  ["rule", rule],
];

function matchedIds(filter: Record<string, unknown> | null, docs: Array<Record<string, unknown> & { id: string }>): string[] {
  if (filter === null) return [];
  return docs.filter((d) => matches(d, filter)).map((d) => d.id);
}

function allowedIds(principal: Principal, action: Action, type: SubjectType, docs: Array<SubjectFields & { id: string }>): string[] {
  return docs.filter(({ id: _id, ...fields }) => allows(abilityOf(principal), action, type, fields)).map((d) => d.id);
}

describe("accessibleFilter matches exactly what allows allows", () => {
  for (const [label, principal] of everybody) {
    for (const action of ["read", "send", "cancel"] as const) {
      it(`${label}: ${action} Command`, () => {
        const filter = accessibleFilter(abilityOf(principal), action, "Command");
        // a filter that matches nothing (e.g. sites: []) is as good as null here; null itself is checked below
        assert.deepEqual(matchedIds(filter, sampleCommands), allowedIds(principal, action, "Command", sampleCommands));
      });
    }
    it(`${label}: read Device`, () => {
      const filter = accessibleFilter(abilityOf(principal), "read", "Device");
      assert.deepEqual(matchedIds(filter, sampleDevices), allowedIds(principal, "read", "Device", sampleDevices));
    });
  }
});

describe("accessibleFilter: concrete results", () => {
  const readCommands = (p: Principal) => matchedIds(accessibleFilter(abilityOf(p), "read", "Command"), sampleCommands);

  it("admin reads every command of its tenant and none of another", () => {
    assert.deepEqual(readCommands(admin), sampleCommands.filter((c) => c.tenant === "acme").map((c) => c.id));
  });

  it("operator with sites [s1] reads only acme/s1 commands", () => {
    assert.deepEqual(readCommands(operatorS1), types.map((t) => `acme/s1/${t}`));
  });

  it("api key reads only its command types in its tenant", () => {
    assert.deepEqual(
      readCommands(apiKey),
      sampleCommands.filter((c) => c.tenant === "acme" && (c.type === "valve.open" || c.type === "valve.close")).map((c) => c.id),
    );
  });

  it("returns null where nothing is readable: rule principal reading Command, Device, Alert", () => {
    assert.equal(accessibleFilter(abilityOf(rule), "read", "Command"), null);
    assert.equal(accessibleFilter(abilityOf(rule), "read", "Device"), null);
    assert.equal(accessibleFilter(abilityOf(rule), "read", "Alert"), null);
  });

  it("returns null for an action nobody granted (viewer send, operator ApiKey read)", () => {
    assert.equal(accessibleFilter(abilityOf(viewerAll), "send", "Command"), null);
    assert.equal(accessibleFilter(abilityOf(operatorAll), "read", "ApiKey"), null);
  });

  it("every non-null filter pins the tenant and is plain JSON (usable as a MongoDB query)", () => {
    const checked: string[] = [];
    for (const [label, principal] of everybody) {
      for (const type of ALL_TYPES) {
        const filter = accessibleFilter(abilityOf(principal), "read", type);
        if (filter === null) continue;
        checked.push(`${label} ${type}`);
        assert.deepEqual(JSON.parse(JSON.stringify(filter)), filter, `${label} ${type}`);
        assert.equal(matches({ tenant: "globex", site: "s1", type: "valve.open" }, filter), false, `${label} ${type} matches another tenant`);
      }
    }
    // Not a loop over nothing: whoever may read commands and devices at all got a filter to check.
    for (const label of ["admin", "operator s1", "operator all sites", "viewer s1", "viewer all sites", "api key"]) {
      for (const type of ["Command", "Device"]) assert.ok(checked.includes(`${label} ${type}`), `${label} ${type} has a filter`);
    }
  });
});
