import { createHash } from "node:crypto";
import { ROLES, type Principal } from "../authz/principal";

/**
 * A JSON Schema a payload must also satisfy (CONTRACT §6.2), for one caller (`subject`), command type
 * and, optionally, site. One per (tenant, subject, site, command type): its id is derived from them.
 */
export interface PayloadLimit {
  id: string;
  tenant: string;
  /** `role:<role>`, `apikey:<key id>` or `rule:<rule id>` */
  subject: string;
  /** absent: every site of the tenant */
  site?: string;
  commandType: string;
  schema: Record<string, unknown>;
  updatedBy: string;
  updatedAt: Date;
}

const SUBJECT_PATTERN = new RegExp(`^(role:(${ROLES.join("|")})|(apikey|rule):[A-Za-z0-9][A-Za-z0-9._:-]{0,127})$`);

export function isValidSubject(subject: string): boolean {
  return SUBJECT_PATTERN.test(subject);
}

/** The subjects whose limits apply to a principal: each of a user's roles, an API key's id, a rule's id. */
export function subjectsOf(principal: Principal): string[] {
  switch (principal.kind) {
    case "user":
      return principal.roles.map((role) => `role:${role}`);
    case "apiKey":
      return [`apikey:${principal.id}`];
    case "rule":
      // A rule principal's id is already `rule:<id>`.
      return [principal.id];
  }
}

/** Setting a limit again for the same (tenant, subject, site, type) replaces it: same id, one document. */
export function payloadLimitId(tenant: string, subject: string, site: string | undefined, commandType: string): string {
  return createHash("sha256")
    .update([tenant, subject, site ?? "", commandType].join("\u0000"))
    .digest("base64url")
    .slice(0, 24);
}
