/** An alert about a command that needs a person (CONTRACT §3, §4). */
export const ALERT_KINDS = ["TIMED_OUT", "FAILED", "EXPIRED", "ESCALATED"] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

export interface Alert {
  /** Derived from the command, attempt and kind (or escalation level): raising twice is a no-op. */
  id: string;
  tenant: string;
  site: string;
  kind: AlertKind;
  commandId: string;
  deviceId: string;
  /** 0 for a command not escalated; an ESCALATED alert carries the new escalation level. */
  level: number;
  raisedAt: Date;
  resolvedAt?: Date;
  message: string;
}

/** An alert as JSON, the one shape of `{p}/alerts` messages and webhook deliveries (CONTRACT §5, §6.4). */
export const alertMessage = (alert: Alert): string => JSON.stringify(alert);
