import { useCallback, useState } from "react";
import { useNow, useQuery, useSubscription } from "../api/hooks";
import { ConsoleCommandsDocument, ConsoleCommandsUpdatedDocument, type CommandFilter, type CommandRowFragment } from "../generated/graphql";
import { href } from "../router";
import { Empty, ErrorMessage, Loading } from "../ui/states";
import { StatusBadge, Time } from "../ui/status";

/** Would the list's query have returned this command? Used to place a command first seen live. */
function matches(filter: CommandFilter, command: CommandRowFragment): boolean {
  if (filter.deviceId && command.deviceId !== filter.deviceId) return false;
  if (filter.status?.length && !filter.status.includes(command.status)) return false;
  if (filter.type && command.type !== filter.type) return false;
  if (filter.source && command.source !== filter.source) return false;
  if (filter.since && Date.parse(command.createdAt) < Date.parse(filter.since)) return false;
  if (filter.until && Date.parse(command.createdAt) > Date.parse(filter.until)) return false;
  return true;
}

/** The later of two versions of a command (events and answers may arrive out of order). */
function newer(current: CommandRowFragment | undefined, incoming: CommandRowFragment): CommandRowFragment {
  if (!current) return incoming;
  return Date.parse(incoming.updatedAt) >= Date.parse(current.updatedAt) ? incoming : current;
}

/**
 * One page of commands (newest first) kept current by `commandUpdated`: a command that changes state
 * updates its row in place; a new one that matches the filter appears on top of the first page, which
 * keeps its size (the oldest rows move to the next page).
 */
export function useLiveCommands(filter: CommandFilter, after: string | undefined, first: number) {
  const key = JSON.stringify([filter, after, first]);
  const query = useQuery(ConsoleCommandsDocument, { filter, first, after }, key);
  const [live, setLive] = useState<{ key: string; updates: Map<string, CommandRowFragment>; added: string[] }>({ key, updates: new Map(), added: [] });
  const current = live.key === key ? live : { key, updates: new Map<string, CommandRowFragment>(), added: [] };
  const onPage = new Set(query.data?.commands.edges.map((e) => e.node.id));

  const apply = useCallback(
    (command: CommandRowFragment) =>
      setLive((previous) => {
        const base = previous.key === key ? previous : { key, updates: new Map<string, CommandRowFragment>(), added: [] };
        const updates = new Map(base.updates);
        updates.set(command.id, newer(updates.get(command.id), command));
        const isNew = !base.added.includes(command.id) && after === undefined && matches(filter, command);
        // Only as many new rows as a page holds are kept on top; older ones are a page away ("Older").
        return { key, updates, added: isNew ? [command.id, ...base.added].slice(0, first) : base.added };
      }),
    [key],
  );
  const liveError = useSubscription(ConsoleCommandsUpdatedDocument, { deviceId: filter.deviceId ?? null }, `${filter.deviceId ?? ""}`, (data) =>
    apply(data.commandUpdated),
  );

  const pageRows = query.data?.commands.edges.map((e) => newer(e.node, current.updates.get(e.node.id) ?? e.node)) ?? [];
  const addedRows = current.added.filter((id) => !onPage.has(id)).map((id) => current.updates.get(id)!);
  return { ...query, rows: query.data ? [...addedRows, ...pageRows].slice(0, first) : [], pageInfo: query.data?.commands.pageInfo, liveError, apply };
}

export function CommandTable({ rows, caption, showDevice = true }: { rows: CommandRowFragment[]; caption: string; showDevice?: boolean }) {
  const now = useNow();
  return (
    <table className="commands">
      <caption>{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Status</th>
          <th scope="col">Command</th>
          {showDevice && <th scope="col">Device</th>}
          <th scope="col">Source</th>
          <th scope="col">Issued by</th>
          <th scope="col">Attempt</th>
          <th scope="col">Created</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((command) => (
          <tr key={command.id} data-command-id={command.id} data-status={command.status} data-updated-at={command.updatedAt}>
            <td>
              <StatusBadge status={command.status} /> <Time iso={command.updatedAt} now={now} />
              {command.escalation && <span className="escalated"> · escalated L{command.escalation.level}</span>}
            </td>
            <td>
              <a href={href.command(command.id)} aria-label={`${command.type} ${command.id}`}>
                {command.type}
              </a>
            </td>
            {showDevice && (
              <td>
                <a href={href.device(command.deviceId)}>{command.deviceId}</a>
              </td>
            )}
            <td>{command.source}</td>
            <td>{command.issuedBy}</td>
            <td>{command.attempt}</td>
            <td>
              <Time iso={command.createdAt} now={now} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The table with its loading, empty and error states. */
export function LiveCommandList({ live, caption, empty, showDevice }: { live: ReturnType<typeof useLiveCommands>; caption: string; empty: string; showDevice?: boolean }) {
  return (
    <>
      {live.error && <ErrorMessage error={live.error} onRetry={live.reload} />}
      {live.liveError && <ErrorMessage error={live.liveError} />}
      {live.loading && !live.data && <Loading what="commands" />}
      {live.data && live.rows.length === 0 && <Empty>{empty}</Empty>}
      {live.rows.length > 0 && <CommandTable rows={live.rows} caption={caption} showDevice={showDevice} />}
    </>
  );
}
