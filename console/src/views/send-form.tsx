import Form from "@rjsf/core";
import type { ErrorSchema, RJSFSchema, UiSchema } from "@rjsf/utils";
import validator from "@rjsf/validator-ajv8";
import { useState } from "react";
import { GatewayRequestError } from "../api/client";
import { useConsole } from "../api/hooks";
import { ConsoleSendCommandDocument, type CommandRowFragment, type ConsoleDeviceQuery } from "../generated/graphql";
import { href } from "../router";
import { ErrorMessage } from "../ui/states";

type CommandTypeInfo = ConsoleDeviceQuery["commandTypes"][number];

/** RFC 6901 pointer → the nested error object RJSF shows beside that field ("" is the form itself). */
export function errorAtPointer(pointer: string, message: string): ErrorSchema {
  const segments = pointer
    .split("/")
    .slice(1)
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
  const root: Record<string, unknown> = {};
  let node = root;
  for (const segment of segments) {
    const child: Record<string, unknown> = {};
    node[segment] = child;
    node = child;
  }
  node.__errors = [message];
  return root as ErrorSchema;
}

const UI_SCHEMA: UiSchema = { "ui:submitButtonOptions": { submitText: "Send command" } };

/**
 * The send form for one device: the types its model accepts, the payload form generated from the type's
 * payloadSchema and checked in the browser (Ajv, via RJSF), and the gateway's refusal shown at the
 * field its JSON pointer names.
 */
export function SendForm({ deviceId, types, onSent }: { deviceId: string; types: CommandTypeInfo[]; onSent: (command: CommandRowFragment) => void }) {
  const { client } = useConsole();
  const [typeName, setTypeName] = useState(types[0]?.name ?? "");
  const [formData, setFormData] = useState<Record<string, unknown>>({});
  const [serverErrors, setServerErrors] = useState<ErrorSchema>();
  const [refusal, setRefusal] = useState<GatewayRequestError>();
  const [sent, setSent] = useState<CommandRowFragment>();
  const [busy, setBusy] = useState(false);
  const type = types.find((t) => t.name === typeName);

  if (types.length === 0) return <p className="message empty">This device's model accepts no command types.</p>;

  const submit = async (payload: Record<string, unknown>) => {
    setBusy(true);
    setServerErrors(undefined);
    setRefusal(undefined);
    setSent(undefined);
    try {
      const { sendCommand } = await client.request(ConsoleSendCommandDocument, { input: { deviceId, type: typeName, payload } });
      setSent(sendCommand);
      onSent(sendCommand);
    } catch (error) {
      const refused = error as GatewayRequestError;
      if (refused.pointer !== undefined && refused.pointer !== "") setServerErrors(errorAtPointer(refused.pointer, refused.message));
      else setRefusal(refused);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="send" aria-labelledby="send-title">
      <h2 id="send-title">Send a command</h2>
      <label htmlFor="command-type">Command type</label>
      <select
        id="command-type"
        value={typeName}
        onChange={(e) => {
          setTypeName(e.target.value);
          setFormData({});
          setServerErrors(undefined);
          setRefusal(undefined);
        }}
      >
        {types.map((t) => (
          <option key={t.name} value={t.name}>
            {t.name}
          </option>
        ))}
      </select>
      {type && <p className="help">{type.description}</p>}
      {type && (
        <Form
          key={type.name}
          schema={type.payloadSchema as RJSFSchema}
          uiSchema={UI_SCHEMA}
          validator={validator}
          formData={formData}
          idPrefix="payload"
          showErrorList={false}
          noHtml5Validate
          extraErrors={serverErrors}
          disabled={busy}
          onChange={(event) => {
            setFormData(event.formData as Record<string, unknown>);
            setServerErrors(undefined);
          }}
          onSubmit={(event) => void submit((event.formData ?? {}) as Record<string, unknown>)}
        />
      )}
      {refusal && <ErrorMessage error={refusal} />}
      {sent && (
        <p className="message notice" role="status">
          Sent: <a href={href.command(sent.id)}>{sent.type} {sent.id}</a>
        </p>
      )}
    </section>
  );
}
