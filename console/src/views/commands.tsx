import { useState, type FormEvent } from "react";
import type { CommandFilter, CommandSource, CommandStatus } from "../generated/graphql";
import { STATUS_LABELS, STATUS_ORDER } from "../ui/status";
import { LiveCommandList, useLiveCommands } from "./live-commands";

const PAGE_SIZE = 50;
const SOURCES: CommandSource[] = ["OPERATOR", "AUTOMATION", "API"];

/** `datetime-local` values are local time without a zone; the API wants an instant. */
const toInstant = (local: string) => (local ? new Date(local).toISOString() : undefined);

export function CommandsView() {
  const [filter, setFilter] = useState<CommandFilter>({});
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined]);
  const after = cursors[cursors.length - 1];
  const live = useLiveCommands(filter, after, PAGE_SIZE);

  const apply = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const text = (name: string) => (form.get(name) as string | null)?.trim() || undefined;
    const status = form.getAll("status") as CommandStatus[];
    setFilter({
      status: status.length ? status : undefined,
      deviceId: text("deviceId"),
      type: text("type"),
      source: (text("source") as CommandSource | undefined) ?? undefined,
      since: toInstant(text("since") ?? ""),
      until: toInstant(text("until") ?? ""),
    });
    setCursors([undefined]);
  };

  return (
    <section aria-labelledby="commands-title">
      <h1 id="commands-title">Commands</h1>
      <form className="filters" onSubmit={apply} aria-label="Filter commands">
        <fieldset>
          <legend>Status</legend>
          {STATUS_ORDER.map((status) => (
            <label key={status} className="check">
              <input type="checkbox" name="status" value={status} /> {STATUS_LABELS[status]}
            </label>
          ))}
        </fieldset>
        <label>
          Device <input name="deviceId" type="text" autoComplete="off" />
        </label>
        <label>
          Type <input name="type" type="text" autoComplete="off" placeholder="e.g. valve.open" />
        </label>
        <label>
          Source
          <select name="source" defaultValue="">
            <option value="">any</option>
            {SOURCES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Created since <input name="since" type="datetime-local" step="1" />
        </label>
        <label>
          Created until <input name="until" type="datetime-local" step="1" />
        </label>
        <button type="submit">Apply filters</button>
      </form>
      <LiveCommandList live={live} caption="Commands, newest first; rows update live" empty="No commands match." />
      <nav className="pager" aria-label="Pages of commands">
        <button type="button" disabled={cursors.length === 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
          Newer
        </button>
        <span>Page {cursors.length}</span>
        <button type="button" disabled={!live.pageInfo?.hasNextPage} onClick={() => setCursors((c) => [...c, live.pageInfo!.endCursor ?? undefined])}>
          Older
        </button>
      </nav>
    </section>
  );
}
