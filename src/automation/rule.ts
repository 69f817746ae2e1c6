import type { Condition } from "./condition";

/** An automation rule (CONTRACT §3): telemetry in its scope matching `when` sends its command. */
export interface AutomationRule {
  id: string;
  tenant: string;
  name: string;
  enabled: boolean;
  /** Scope: each, when set, must equal the telemetry device's. */
  site?: string;
  model?: string;
  deviceId?: string;
  when: Condition;
  commandType: string;
  commandPayload: Record<string, unknown>;
  /** Absent: the device that sent the telemetry. */
  targetDeviceId?: string;
  cooldownSeconds: number;
  /** The admin who created it. */
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
}

/** What the rule has done, kept by the engine. */
export interface RuleStats {
  /** Commands the rule has sent. */
  fireCount: number;
  /** When it last sent one. */
  lastFiredAt?: Date;
  /** Why the latest firing sent nothing (a refusal or a failure); cleared by the next one that sends. */
  lastError?: string;
}

export type RuleWithStats = AutomationRule & RuleStats;

/** The principal id a rule's commands are issued by. */
export const rulePrincipalId = (ruleId: string): `rule:${string}` => `rule:${ruleId}`;
