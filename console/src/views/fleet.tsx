import { useState, type FormEvent } from "react";
import type { GatewayClient, GatewayRequestError } from "../api/client";
import { useConsole, useNow, useQuery, useSubscription } from "../api/hooks";
import { maySend } from "../api/session";
import {
  ConsoleCancelFleetCommandDocument,
  ConsoleCreateFleetCommandDocument,
  ConsoleFleetCommandsDocument,
  ConsoleFleetCommandUpdatedDocument,
  ConsolePauseFleetCommandDocument,
  ConsolePreviewFleetTargetsDocument,
  ConsoleResumeFleetCommandDocument,
  type ConsolePreviewFleetTargetsQuery,
  type FleetCommandAction,
  type FleetRowFragment,
  type FleetTargetInput,
} from "../generated/graphql";
import { Empty, ErrorMessage, Loading } from "../ui/states";
import { FleetStatusBadge, STATUS_LABELS, STATUS_ORDER, Time } from "../ui/status";

const PAGE_SIZE = 20;
const ACTION_LABELS: Record<FleetCommandAction, string> = { PAUSE: "Pause", RESUME: "Resume", CANCEL: "Cancel" };
const ACTIONS: Record<FleetCommandAction, (client: GatewayClient, id: string) => Promise<FleetRowFragment>> = {
  PAUSE: async (client, id) => (await client.request(ConsolePauseFleetCommandDocument, { id })).pauseFleetCommand,
  RESUME: async (client, id) => (await client.request(ConsoleResumeFleetCommandDocument, { id })).resumeFleetCommand,
  CANCEL: async (client, id) => (await client.request(ConsoleCancelFleetCommandDocument, { id })).cancelFleetCommand,
};

/** Fleet commands (CONTRACT §6.3): create one after previewing its devices, follow each one's progress live, pause, resume, cancel. */
export function FleetView() {
  const { session } = useConsole();
  const query = useQuery(ConsoleFleetCommandsDocument, { first: PAGE_SIZE }, "fleet");
  // The newest state of each fleet command heard of (created here, an action's answer, or fleetCommandUpdated): it
  // replaces the listed one. An action's answer and the events race, so an older version never replaces a newer one.
  const [updates, setUpdates] = useState<ReadonlyMap<string, FleetRowFragment>>(new Map());
  const apply = (fleet: FleetRowFragment) =>
    setUpdates((previous) => (newer(previous.get(fleet.id), fleet) === fleet ? new Map(previous).set(fleet.id, fleet) : previous));
  const liveError = useSubscription(ConsoleFleetCommandUpdatedDocument, {}, "fleet", ({ fleetCommandUpdated }) => apply(fleetCommandUpdated));
  const listed = query.data?.fleetCommands.edges.map((e) => e.node) ?? [];
  // New ones go on top; an update of one beyond this page is not shown here.
  const newestListed = listed[0]?.createdAt ?? "";
  const created = [...updates.values()]
    .filter((f) => !listed.some((l) => l.id === f.id) && f.createdAt >= newestListed)
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  const fleets = [...created, ...listed.map((f) => newer(f, updates.get(f.id) ?? f))];

  return (
    <section aria-labelledby="fleet-title">
      <h1 id="fleet-title">Fleet commands</h1>
      {maySend(session) && session.kind !== "apiKey" && query.data && <CreateFleet types={query.data.commandTypes} onCreated={apply} />}
      <h2>Fleet commands of this tenant</h2>
      {query.error && <ErrorMessage error={query.error} onRetry={query.reload} />}
      {liveError && <ErrorMessage error={liveError} onRetry={query.reload} />}
      {query.loading && !query.data && <Loading what="fleet commands" />}
      {query.data && fleets.length === 0 && <Empty>No fleet commands yet.</Empty>}
      {fleets.length > 0 && (
        <ul className="fleet-list">
          {fleets.map((fleet) => (
            <FleetItem key={fleet.id} fleet={fleet} onChanged={apply} />
          ))}
        </ul>
      )}
    </section>
  );
}

interface Draft {
  name: string;
  type: string;
  site: string;
  model: string;
  deviceIds: string;
  payload: string;
  maxPerMinute: string;
}

function CreateFleet({ types, onCreated }: { types: Array<{ name: string; models: string[] }>; onCreated: (fleet: FleetRowFragment) => void }) {
  const { client } = useConsole();
  const [draft, setDraft] = useState<Draft>({ name: "", type: types[0]?.name ?? "", site: "", model: "", deviceIds: "", payload: "{}", maxPerMinute: "" });
  const [preview, setPreview] = useState<{ of: string; result: ConsolePreviewFleetTargetsQuery["previewFleetTargets"] }>();
  const [error, setError] = useState<GatewayRequestError | string>();
  const [busy, setBusy] = useState(false);
  const set = (field: keyof Draft) => (value: string) => setDraft((d) => ({ ...d, [field]: value }));

  const parsed = (): { target: FleetTargetInput; payload: unknown } | string => {
    let payload: unknown;
    try {
      payload = JSON.parse(draft.payload || "{}");
    } catch {
      return "The payload is not valid JSON.";
    }
    const ids = draft.deviceIds.split(/[\s,]+/).filter(Boolean);
    return { target: { site: draft.site.trim() || null, model: draft.model.trim() || null, deviceIds: ids.length ? ids : null }, payload };
  };
  // A preview stands for exactly the draft it was made of: any change asks for a new one before creating.
  const key = JSON.stringify(draft);
  const current = preview?.of === key ? preview.result : undefined;

  const run = async (what: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await what();
    } catch (e) {
      setError(e as GatewayRequestError);
    } finally {
      setBusy(false);
    }
  };
  const onPreview = () =>
    run(async () => {
      const input = parsed();
      if (typeof input === "string") return setError(input);
      const { previewFleetTargets } = await client.request(ConsolePreviewFleetTargetsDocument, { target: input.target, type: draft.type, payload: input.payload });
      setPreview({ of: key, result: previewFleetTargets });
    });
  const onCreate = (event: FormEvent) => {
    event.preventDefault();
    void run(async () => {
      const input = parsed();
      if (typeof input === "string") return setError(input);
      const maxPerMinute = Number(draft.maxPerMinute);
      const { createFleetCommand } = await client.request(ConsoleCreateFleetCommandDocument, {
        input: { name: draft.name, type: draft.type, target: input.target, payload: input.payload, rollout: draft.maxPerMinute ? { maxPerMinute } : null },
      });
      onCreated(createFleetCommand);
      setPreview(undefined);
    });
  };

  return (
    <form className="fleet-create" aria-labelledby="fleet-create-title" onSubmit={onCreate}>
      <h2 id="fleet-create-title">New fleet command</h2>
      <div className="fields">
        <label>
          Name
          <input required value={draft.name} onChange={(e) => set("name")(e.target.value)} />
        </label>
        <label>
          Command type
          <select value={draft.type} onChange={(e) => set("type")(e.target.value)}>
            {types.map((t) => (
              <option key={t.name} value={t.name}>
                {t.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Site (empty: every site)
          <input value={draft.site} onChange={(e) => set("site")(e.target.value)} />
        </label>
        <label>
          Model (empty: every model)
          <input value={draft.model} onChange={(e) => set("model")(e.target.value)} />
        </label>
        <label>
          Device ids (comma separated; empty: every matching device)
          <input value={draft.deviceIds} onChange={(e) => set("deviceIds")(e.target.value)} />
        </label>
        <label>
          Devices started per minute (empty: the default)
          <input inputMode="numeric" value={draft.maxPerMinute} onChange={(e) => set("maxPerMinute")(e.target.value)} />
        </label>
        <label className="wide">
          Payload (JSON)
          <textarea rows={3} value={draft.payload} onChange={(e) => set("payload")(e.target.value)} />
        </label>
      </div>
      {error && (typeof error === "string" ? <p className="message error" role="alert">{error}</p> : <ErrorMessage error={error} />)}
      <div className="actions">
        <button type="button" disabled={busy} onClick={() => void onPreview()}>
          Preview devices
        </button>
        <button type="submit" disabled={busy || !current || current.sendable === 0}>
          Create fleet command
        </button>
      </div>
      {current && <Preview preview={current} />}
    </form>
  );
}

function Preview({ preview }: { preview: ConsolePreviewFleetTargetsQuery["previewFleetTargets"] }) {
  return (
    <section className="fleet-preview" aria-labelledby="fleet-preview-title" data-testid="fleet-preview">
      <h3 id="fleet-preview-title">
        {preview.targeted} devices match: {preview.sendable} will be sent the command, {preview.skipped} skipped
      </h3>
      <table>
        <caption>Devices of the preview</caption>
        <thead>
          <tr>
            <th scope="col">Device</th>
            <th scope="col">Outcome</th>
          </tr>
        </thead>
        <tbody>
          {preview.deviceIds.map((id) => (
            <tr key={id} data-device-id={id} data-outcome="targeted">
              <td>{id}</td>
              <td>Will be sent</td>
            </tr>
          ))}
          {preview.skippedDevices.map((skipped) => (
            <tr key={skipped.deviceId} data-device-id={skipped.deviceId} data-outcome="skipped">
              <td>{skipped.deviceId}</td>
              <td>Skipped: {skipped.reason}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** `b` unless `a` is of a later version (the same version: `b`, the later heard, with newer progress). */
function newer(a: FleetRowFragment | undefined, b: FleetRowFragment): FleetRowFragment {
  return a && a.version > b.version ? a : b;
}

function FleetItem({ fleet, onChanged }: { fleet: FleetRowFragment; onChanged: (fleet: FleetRowFragment) => void }) {
  const { client } = useConsole();
  const [error, setError] = useState<GatewayRequestError>();
  const [busy, setBusy] = useState(false);
  const now = useNow();
  const act = async (action: FleetCommandAction) => {
    setBusy(true);
    setError(undefined);
    try {
      onChanged(await ACTIONS[action](client, fleet.id));
    } catch (e) {
      setError(e as GatewayRequestError);
    } finally {
      setBusy(false);
    }
  };
  return (
    <li className="fleet" data-fleet-id={fleet.id} data-status={fleet.status} aria-labelledby={`fleet-${fleet.id}`}>
      <h3 id={`fleet-${fleet.id}`}>
        {fleet.name} <FleetStatusBadge status={fleet.status} />
      </h3>
      <p className="meta">
        {fleet.type} · {fleet.targeted} targeted, {fleet.skipped} skipped · by {fleet.createdBy}, <Time iso={fleet.createdAt} now={now} />
        {fleet.abortReason && <span className="message error"> · {fleet.abortReason}</span>}
      </p>
      <Progress fleet={fleet} />
      {error && <ErrorMessage error={error} />}
      {fleet.allowedActions.length > 0 && (
        <div className="actions">
          {fleet.allowedActions.map((action) => (
            <button key={action} type="button" disabled={busy} onClick={() => void act(action)}>
              {ACTION_LABELS[action]}
              <span className="visually-hidden"> {fleet.name}</span>
            </button>
          ))}
        </div>
      )}
    </li>
  );
}

/** The children by status as one bar (a segment per status, the same colours as everywhere), out of the devices to send to. */
function Progress({ fleet }: { fleet: FleetRowFragment }) {
  const total = Math.max(0, fleet.targeted - fleet.skipped);
  const counts = STATUS_ORDER.map((status) => ({ status, count: fleet.counts.find((c) => c.status === status)?.count ?? 0 })).filter((c) => c.count > 0);
  const started = counts.reduce((sum, c) => sum + c.count, 0);
  const summary = counts.map((c) => `${STATUS_LABELS[c.status]} ${c.count}`).join(", ") || "none started";
  return (
    <div className="fleet-progress">
      <div className="bar" role="img" aria-label={`${started} of ${total} started: ${summary}`} data-testid="fleet-progress">
        {counts.map((c) => (
          <span
            key={c.status}
            className={`segment status-${c.status.toLowerCase().replace("_", "-")}`}
            style={{ width: `${total ? (100 * c.count) / total : 0}%` }}
            data-status={c.status}
            data-count={c.count}
          />
        ))}
      </div>
      <p className="legend">
        {started} of {total} started: {summary}
      </p>
    </div>
  );
}
