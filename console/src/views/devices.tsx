import { useState } from "react";
import { useNow, useQuery, useSubscription } from "../api/hooks";
import { ConsoleDevicesDocument, ConsoleDevicesUpdatedDocument, type DeviceRowFragment } from "../generated/graphql";
import { href } from "../router";
import { Empty, ErrorMessage, Loading } from "../ui/states";
import { OnlineBadge, Time } from "../ui/status";

const PAGE_SIZE = 50;

export function DevicesView() {
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined]);
  const after = cursors[cursors.length - 1];
  const query = useQuery(ConsoleDevicesDocument, { first: PAGE_SIZE, after }, after ?? "");
  // Presence and last seen change live (deviceUpdated, §6.2): the newest of each device shown replaces its row.
  const [updates, setUpdates] = useState<ReadonlyMap<string, DeviceRowFragment>>(new Map());
  const liveError = useSubscription(ConsoleDevicesUpdatedDocument, {}, "", ({ deviceUpdated }) =>
    setUpdates((previous) => new Map(previous).set(deviceUpdated.id, deviceUpdated)),
  );
  const now = useNow();
  const devices = query.data?.devices.edges.map((e) => updates.get(e.node.id) ?? e.node) ?? [];
  return (
    <section aria-labelledby="devices-title">
      <h1 id="devices-title">Devices</h1>
      {query.error && <ErrorMessage error={query.error} onRetry={query.reload} />}
      {liveError && <ErrorMessage error={liveError} onRetry={query.reload} />}
      {query.loading && !query.data && <Loading what="devices" />}
      {query.data && devices.length === 0 && <Empty>No devices are visible to you.</Empty>}
      {devices.length > 0 && (
        <table>
          <caption>Devices; online state and last seen change live</caption>
          <thead>
            <tr>
              <th scope="col">Device</th>
              <th scope="col">Model</th>
              <th scope="col">Site</th>
              <th scope="col">State</th>
              <th scope="col">Last seen</th>
            </tr>
          </thead>
          <tbody>
            {devices.map((device) => (
              <tr key={device.id} data-device-id={device.id} data-online={device.online}>
                <td>
                  <a href={href.device(device.id)}>{device.id}</a>
                </td>
                <td>{device.model}</td>
                <td>{device.site}</td>
                <td>
                  <OnlineBadge online={device.online} />
                </td>
                <td>
                  <Time iso={device.lastSeenAt} now={now} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <nav className="pager" aria-label="Pages of devices">
        <button type="button" disabled={cursors.length === 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
          Previous
        </button>
        <button type="button" disabled={!query.data?.devices.pageInfo.hasNextPage} onClick={() => setCursors((c) => [...c, query.data!.devices.pageInfo.endCursor ?? undefined])}>
          Next
        </button>
      </nav>
    </section>
  );
}
