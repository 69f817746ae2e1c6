import { useState, type FormEvent } from "react";
import { GatewayRequestError } from "../api/client";
import { useConsole, useNow, useQuery, useSubscription } from "../api/hooks";
import {
  ConsoleAlertRaisedDocument,
  ConsoleAlertsDocument,
  ConsoleCancelDocument,
  ConsoleCommandDocument,
  ConsoleCommandUpdatedDocument,
  ConsoleEscalateDocument,
  ConsoleRetryDocument,
  type AlertRowFragment,
  type CommandDetailFragment,
} from "../generated/graphql";
import { href } from "../router";
import { ErrorMessage, Loading } from "../ui/states";
import { StatusBadge, Time } from "../ui/status";
import { AlertList } from "./alerts";

/** Alerts are listed newest first without a command filter; the command's are among the recent ones. */
const ALERTS_SCANNED = 200;

export function CommandDetailView({ id }: { id: string }) {
  const { client } = useConsole();
  const query = useQuery(ConsoleCommandDocument, { id }, id);
  const [latest, setLatest] = useState<CommandDetailFragment>();
  const alerts = useCommandAlerts(id);
  const liveError = useSubscription(ConsoleCommandUpdatedDocument, { id }, id, (data) => {
    setLatest((current) => newest(current, data.commandUpdated));
    // A transition may resolve the command's alerts (a late reply); those changes have no event of their own.
    alerts.reload();
  });
  const [actionError, setActionError] = useState<GatewayRequestError>();
  const [busy, setBusy] = useState(false);
  const now = useNow();

  if (query.loading && !query.data) return <Loading what="the command" />;
  if (query.error && !query.data) return <ErrorMessage error={query.error} onRetry={query.reload} />;
  const loaded = query.data?.command;
  if (!loaded) {
    return (
      <section>
        <h1>Command not found</h1>
        <p className="message empty">No command {id} is visible to you.</p>
      </section>
    );
  }
  const command = newest(latest, loaded);
  const device = loaded.device;

  const act = async (run: () => Promise<CommandDetailFragment>) => {
    setBusy(true);
    setActionError(undefined);
    try {
      const updated = await run();
      setLatest((current) => newest(current, updated));
      alerts.reload();
    } catch (error) {
      setActionError(error as GatewayRequestError);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="command-title" data-command-id={command.id} data-status={command.status}>
      <p>
        <a href={href.commands()}>← All commands</a>
      </p>
      <h1 id="command-title">
        {command.type} <StatusBadge status={command.status} />
      </h1>
      {liveError && <ErrorMessage error={liveError} />}
      <dl className="facts">
        <dt>Command id</dt>
        <dd>
          <code>{command.id}</code>
        </dd>
        <dt>Device</dt>
        <dd>
          <a href={href.device(command.deviceId)}>{command.deviceId}</a>
          {device && ` (${device.model}, site ${device.site})`}
        </dd>
        <dt>Status</dt>
        <dd>
          <StatusBadge status={command.status} /> since <Time iso={command.updatedAt} now={now} />
        </dd>
        <dt>Source</dt>
        <dd>{command.source}</dd>
        <dt>Issued by</dt>
        <dd>{command.issuedBy}</dd>
        <dt>Attempt</dt>
        <dd data-testid="attempt">{command.attempt}</dd>
        <dt>Timeout</dt>
        <dd>
          {command.timeoutSeconds} s{command.deadline && <> · deadline <Time iso={command.deadline} now={now} /></>}
        </dd>
        {command.expiresAt && (
          <>
            <dt>Expires</dt>
            <dd>{new Date(command.expiresAt).toLocaleString()}</dd>
          </>
        )}
        {command.idempotencyKey && (
          <>
            <dt>Idempotency key</dt>
            <dd>{command.idempotencyKey}</dd>
          </>
        )}
      </dl>

      <Actions command={command} busy={busy} act={act} client={client} />
      {actionError && <ErrorMessage error={actionError} />}

      <h2>Payload</h2>
      <pre className="json" tabIndex={0} aria-label="Payload">{JSON.stringify(command.payload, null, 2)}</pre>
      {command.result != null && (
        <>
          <h2>Result</h2>
          <pre className="json" tabIndex={0} aria-label="Result">{JSON.stringify(command.result, null, 2)}</pre>
        </>
      )}
      {command.error && (
        <>
          <h2>Error</h2>
          <p className="message error" data-testid="command-error">
            <code>{command.error.code}</code> {command.error.message}
          </p>
        </>
      )}
      <h2>Escalation</h2>
      {command.escalation ? (
        <p data-testid="escalation">
          Level {command.escalation.level}, by {command.escalation.by}, <Time iso={command.escalation.at} now={now} />
          {command.escalation.note && <>: “{command.escalation.note}”</>}
        </p>
      ) : (
        <p className="message empty">Not escalated.</p>
      )}

      <h2>History</h2>
      <ol className="timeline" aria-label="History, oldest first">
        {command.history.map((event, index) => (
          <li key={index} data-status={event.status}>
            <StatusBadge status={event.status} /> <time dateTime={event.at}>{new Date(event.at).toLocaleString()}</time> · by <span className="actor">{event.actor}</span>
            {event.detail && <span className="detail"> · {event.detail}</span>}
          </li>
        ))}
      </ol>

      <h2>Alerts of this command</h2>
      {alerts.error && <ErrorMessage error={alerts.error} onRetry={alerts.reload} />}
      {alerts.loading && !alerts.rows && <Loading what="alerts" />}
      {alerts.rows && <AlertList alerts={alerts.rows} empty="No alerts for this command." linkCommands={false} />}
    </section>
  );
}

function Actions({ command, busy, act, client }: { command: CommandDetailFragment; busy: boolean; act: (run: () => Promise<CommandDetailFragment>) => Promise<void>; client: ReturnType<typeof useConsole>["client"] }) {
  const [note, setNote] = useState("");
  const allowed = new Set(command.allowedActions);
  if (allowed.size === 0) return null;
  const escalate = (event: FormEvent) => {
    event.preventDefault();
    void act(async () => (await client.request(ConsoleEscalateDocument, { id: command.id, note: note.trim() || null })).escalateCommand).then(() => setNote(""));
  };
  return (
    <div className="actions" role="group" aria-label="Actions">
      {allowed.has("RETRY") && (
        <button type="button" disabled={busy} onClick={() => void act(async () => (await client.request(ConsoleRetryDocument, { id: command.id })).retryCommand)}>
          Retry
        </button>
      )}
      {allowed.has("CANCEL") && (
        <button type="button" disabled={busy} onClick={() => void act(async () => (await client.request(ConsoleCancelDocument, { id: command.id })).cancelCommand)}>
          Cancel
        </button>
      )}
      {allowed.has("ESCALATE") && (
        <form onSubmit={escalate} className="escalate">
          <label htmlFor="escalation-note">Escalation note</label>
          <input id="escalation-note" type="text" maxLength={1000} value={note} onChange={(e) => setNote(e.target.value)} />
          <button type="submit" disabled={busy}>
            Escalate
          </button>
        </form>
      )}
    </div>
  );
}

function newest(a: CommandDetailFragment | undefined, b: CommandDetailFragment): CommandDetailFragment {
  if (!a) return b;
  const byTime = Date.parse(b.updatedAt) - Date.parse(a.updatedAt);
  if (byTime !== 0) return byTime > 0 ? b : a;
  return b.history.length >= a.history.length ? b : a;
}

/** The command's alerts: from the recent ones, then live as they are raised. */
function useCommandAlerts(commandId: string) {
  const query = useQuery(ConsoleAlertsDocument, { first: ALERTS_SCANNED }, commandId);
  const [raised, setRaised] = useState<AlertRowFragment[]>([]);
  useSubscription(ConsoleAlertRaisedDocument, {}, commandId, (data) => {
    if (data.alertRaised.commandId === commandId) setRaised((current) => [data.alertRaised, ...current.filter((a) => a.id !== data.alertRaised.id)]);
  });
  const listed = query.data?.alerts.edges.map((e) => e.node).filter((a) => a.commandId === commandId);
  const rows = listed && [...raised.filter((a) => !listed.some((l) => l.id === a.id)), ...listed];
  return { rows, error: query.error, loading: query.loading, reload: query.reload };
}
