import { useState } from "react";
import { useNow, useQuery, useSubscription } from "../api/hooks";
import { ConsoleAlertRaisedDocument, ConsoleAlertsDocument, type AlertRowFragment } from "../generated/graphql";
import { href } from "../router";
import { Empty, ErrorMessage, Loading } from "../ui/states";
import { AlertBadge, Time } from "../ui/status";

const PAGE_SIZE = 50;

export function AlertList({ alerts, empty, linkCommands = true }: { alerts: AlertRowFragment[]; empty: string; linkCommands?: boolean }) {
  const now = useNow();
  if (alerts.length === 0) return <Empty>{empty}</Empty>;
  return (
    <ul className="alerts">
      {alerts.map((alert) => (
        <li key={alert.id} data-alert-id={alert.id} data-kind={alert.kind} data-command-id={alert.commandId} className={alert.resolvedAt ? "resolved" : "open"}>
          <AlertBadge kind={alert.kind} /> {alert.level > 0 && <span>level {alert.level} · </span>}
          {alert.resolvedAt ? (
            <span className="badge resolved-mark">Resolved <Time iso={alert.resolvedAt} now={now} /></span>
          ) : (
            <span className="badge open-mark">Open</span>
          )}{" "}
          <span className="alert-message">{alert.message}</span> · raised <Time iso={alert.raisedAt} now={now} /> ·{" "}
          {linkCommands ? <a href={href.command(alert.commandId)}>command on {alert.deviceId}</a> : <span>device {alert.deviceId}</span>}
        </li>
      ))}
    </ul>
  );
}

function AlertSection({ open, title, empty, raised }: { open: boolean; title: string; empty: string; raised: AlertRowFragment[] }) {
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined]);
  const after = cursors[cursors.length - 1];
  const query = useQuery(ConsoleAlertsDocument, { open, first: PAGE_SIZE, after }, `${open}:${after ?? ""}`);
  const listed = query.data?.alerts.edges.map((e) => e.node) ?? [];
  const shown = after === undefined ? [...raised.filter((a) => !listed.some((l) => l.id === a.id)), ...listed] : listed;
  const headingId = `alerts-${open ? "open" : "resolved"}`;
  return (
    <section aria-labelledby={headingId}>
      <h2 id={headingId}>{title}</h2>
      {query.error && <ErrorMessage error={query.error} onRetry={query.reload} />}
      {query.loading && !query.data ? <Loading what="alerts" /> : <AlertList alerts={shown} empty={empty} />}
      {(cursors.length > 1 || query.data?.alerts.pageInfo.hasNextPage) && (
        <nav className="pager" aria-label={`Pages of ${title.toLowerCase()}`}>
          <button type="button" disabled={cursors.length === 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
            Newer
          </button>
          <button type="button" disabled={!query.data?.alerts.pageInfo.hasNextPage} onClick={() => setCursors((c) => [...c, query.data!.alerts.pageInfo.endCursor ?? undefined])}>
            Older
          </button>
        </nav>
      )}
    </section>
  );
}

/** Open alerts first (new ones appear live), then resolved ones. */
export function AlertsView() {
  const [raised, setRaised] = useState<AlertRowFragment[]>([]);
  const liveError = useSubscription(ConsoleAlertRaisedDocument, {}, "alerts", (data) =>
    setRaised((current) => [data.alertRaised, ...current.filter((a) => a.id !== data.alertRaised.id)]),
  );
  return (
    <section aria-labelledby="alerts-title">
      <h1 id="alerts-title">Alerts</h1>
      {liveError && <ErrorMessage error={liveError} />}
      <AlertSection open title="Open alerts" empty="No open alerts." raised={raised.filter((a) => !a.resolvedAt)} />
      <AlertSection open={false} title="Resolved alerts" empty="No resolved alerts." raised={[]} />
    </section>
  );
}
