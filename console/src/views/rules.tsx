import { useState } from "react";
import type { GatewayRequestError } from "../api/client";
import { useConsole, useNow, useQuery } from "../api/hooks";
import { ConsoleRulesDocument, ConsoleSetRuleEnabledDocument } from "../generated/graphql";
import { Empty, ErrorMessage, Loading } from "../ui/states";
import { Time } from "../ui/status";

/** Automation rules (admins): when each last fired, its last error, and a switch to enable or disable it. */
export function RulesView() {
  const { client } = useConsole();
  const query = useQuery(ConsoleRulesDocument, {}, "rules");
  const [error, setError] = useState<GatewayRequestError>();
  const [busy, setBusy] = useState<string>();
  const now = useNow();

  const toggle = async (id: string, enabled: boolean) => {
    setBusy(id);
    setError(undefined);
    try {
      await client.request(ConsoleSetRuleEnabledDocument, { id, enabled });
      query.reload();
    } catch (e) {
      setError(e as GatewayRequestError);
    } finally {
      setBusy(undefined);
    }
  };

  return (
    <section aria-labelledby="rules-title">
      <h1 id="rules-title">Automation rules</h1>
      {error && <ErrorMessage error={error} />}
      {query.error && <ErrorMessage error={query.error} onRetry={query.reload} />}
      {query.loading && !query.data && <Loading what="rules" />}
      {query.data && query.data.rules.length === 0 && <Empty>No automation rules in this tenant.</Empty>}
      {query.data && query.data.rules.length > 0 && (
        <table>
          <caption>Rules of this tenant</caption>
          <thead>
            <tr>
              <th scope="col">Rule</th>
              <th scope="col">Sends</th>
              <th scope="col">Scope</th>
              <th scope="col">Last fired</th>
              <th scope="col">Fired</th>
              <th scope="col">Last error</th>
              <th scope="col">Enabled</th>
            </tr>
          </thead>
          <tbody>
            {query.data.rules.map((rule) => (
              <tr key={rule.id} data-rule-id={rule.id}>
                <td>{rule.name}</td>
                <td>
                  {rule.commandType}
                  {rule.targetDeviceId ? ` → ${rule.targetDeviceId}` : " → the reporting device"}
                </td>
                <td>{[rule.site && `site ${rule.site}`, rule.model && `model ${rule.model}`, rule.deviceId && `device ${rule.deviceId}`].filter(Boolean).join(", ") || "all devices"}</td>
                <td>
                  <Time iso={rule.lastFiredAt} now={now} />
                </td>
                <td>{rule.fireCount}</td>
                <td>{rule.lastError ? <span className="message error">{rule.lastError}</span> : "none"}</td>
                <td>
                  <label className="check">
                    <input type="checkbox" checked={rule.enabled} disabled={busy === rule.id} onChange={(e) => void toggle(rule.id, e.target.checked)} />
                    <span className="visually-hidden">Enable {rule.name}</span>
                    {rule.enabled ? " Enabled" : " Disabled"}
                  </label>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
