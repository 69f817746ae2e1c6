import type { AlertKind, CommandStatus, FleetCommandStatus } from "../generated/graphql";

/**
 * One word and one colour per command status, used by every view (list, detail, timeline, device page),
 * so a state reads the same everywhere. Colours are paired with the word, never the only signal.
 */
export const STATUS_LABELS: Record<CommandStatus, string> = {
  QUEUED: "Queued",
  SENT: "Sent",
  DELIVERED: "Delivered",
  SUCCEEDED: "Succeeded",
  FAILED: "Failed",
  TIMED_OUT: "Timed out",
  EXPIRED: "Expired",
  CANCELED: "Canceled",
};

export const STATUS_ORDER: CommandStatus[] = ["QUEUED", "SENT", "DELIVERED", "SUCCEEDED", "FAILED", "TIMED_OUT", "EXPIRED", "CANCELED"];

export function StatusBadge({ status }: { status: CommandStatus }) {
  return (
    <span className={`badge status-${status.toLowerCase().replace("_", "-")}`} data-status={status}>
      {STATUS_LABELS[status]}
    </span>
  );
}

export const FLEET_STATUS_LABELS: Record<FleetCommandStatus, string> = {
  SCHEDULED: "Scheduled",
  RUNNING: "Running",
  PAUSED: "Paused",
  COMPLETED: "Completed",
  ABORTED: "Aborted",
  CANCELED: "Canceled",
};

export function FleetStatusBadge({ status }: { status: FleetCommandStatus }) {
  return (
    <span className={`badge fleet-${status.toLowerCase()}`} data-fleet-status={status}>
      {FLEET_STATUS_LABELS[status]}
    </span>
  );
}

export const ALERT_LABELS: Record<AlertKind, string> = { TIMED_OUT: "Timed out", FAILED: "Failed", EXPIRED: "Expired", ESCALATED: "Escalated" };

export function AlertBadge({ kind }: { kind: AlertKind }) {
  return <span className={`badge alert-${kind.toLowerCase().replace("_", "-")}`}>{ALERT_LABELS[kind]}</span>;
}

export function OnlineBadge({ online }: { online: boolean }) {
  return <span className={`badge ${online ? "online" : "offline"}`}>{online ? "Online" : "Offline"}</span>;
}

/** "12 s ago", "3 min ago", … */
export function age(iso: string | null | undefined, now: number): string {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.round(hours / 24)} d ago`;
}

export function Time({ iso, now }: { iso: string | null | undefined; now: number }) {
  if (!iso) return <span>never</span>;
  return (
    <time dateTime={iso} title={new Date(iso).toLocaleString()}>
      {age(iso, now)}
    </time>
  );
}
