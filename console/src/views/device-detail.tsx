import { useState } from "react";
import { useNow, useQuery, useSubscription } from "../api/hooks";
import { maySend } from "../api/session";
import { useConsole } from "../api/hooks";
import { ConsoleDeviceDocument, ConsoleDevicesUpdatedDocument, type DeviceRowFragment } from "../generated/graphql";
import { ErrorMessage, Loading } from "../ui/states";
import { OnlineBadge, Time } from "../ui/status";
import { LiveCommandList, useLiveCommands } from "./live-commands";
import { SendForm } from "./send-form";

const RECENT = 20;

export function DeviceDetailView({ id }: { id: string }) {
  const { session } = useConsole();
  const query = useQuery(ConsoleDeviceDocument, { id }, id);
  // Online state and last seen, live (deviceUpdated, §6.2).
  const [live, setLive] = useState<DeviceRowFragment>();
  useSubscription(ConsoleDevicesUpdatedDocument, { id }, id, ({ deviceUpdated }) => setLive(deviceUpdated));
  const recent = useLiveCommands({ deviceId: id }, undefined, RECENT);
  const now = useNow();

  if (query.loading && !query.data) return <Loading what="the device" />;
  if (query.error && !query.data) return <ErrorMessage error={query.error} onRetry={query.reload} />;
  const device = live?.id === id ? live : query.data?.device;
  if (!device) {
    return (
      <section>
        <h1>Device not found</h1>
        <p className="message empty">No device {id} is visible to you.</p>
      </section>
    );
  }
  const types = query.data!.commandTypes.filter((t) => t.models.includes(device.model) || t.models.includes("*"));
  return (
    <section aria-labelledby="device-title" data-device-id={device.id}>
      <h1 id="device-title">
        {device.id} <OnlineBadge online={device.online} />
      </h1>
      <dl className="facts">
        <dt>Model</dt>
        <dd>{device.model}</dd>
        <dt>Site</dt>
        <dd>{device.site}</dd>
        <dt>Last seen</dt>
        <dd>
          <Time iso={device.lastSeenAt} now={now} />
        </dd>
      </dl>
      {maySend(session) && <SendForm deviceId={device.id} types={types} onSent={recent.apply} />}
      <h2>Recent commands</h2>
      <LiveCommandList live={recent} caption={`Latest ${RECENT} commands of ${device.id}; rows update live`} empty="No commands for this device yet." showDevice={false} />
    </section>
  );
}
