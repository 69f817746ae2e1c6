import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { print } from "graphql";
import mqtt, { type MqttClient } from "mqtt";
import { createSimulatedDevice } from "../../src/device-sdk";
import { createTopics } from "../../src/mqtt/topics";
import { CommandsDocument, CreateAlertWebhookDocument, CreateFleetCommandDocument, CreateRuleDocument, RegisterDeviceDocument, SendCommandDocument } from "../generated/graphql";
import { waitForStatus } from "../kit/gateway";
import { OtlpReceiver, SPAN_KIND, type ReceivedSpan } from "../kit/otlp-receiver";
import { dropBrokerSession, startGatewayProcess, type GatewayProcess } from "../kit/process";
import { processGatewaySetup, type ProcessGatewaySetup } from "../kit/process-setup";
import { MOSQUITTO_URL, uniqueName } from "../kit/store";
import { waitUntil } from "../kit/wait";
import { WebhookReceiver } from "../kit/webhook-receiver";

const SERVICE_NAME = "gateway-under-test";

/**
 * Tracing as an operator switches it on (CONTRACT §6.5): the gateway runs as a process with
 * OTEL_EXPORTER_OTLP_ENDPOINT pointing at an OTLP/HTTP receiver in this process, and one command's
 * spans, as exported, form one trace with the parent links the README describes.
 */
describe("tracing over OTLP/HTTP", () => {
  let receiver: OtlpReceiver;
  let setup: ProcessGatewaySetup;
  let gateway: GatewayProcess;

  before(async () => {
    receiver = await OtlpReceiver.start();
    // Debug logs: a refused reply is logged inside its span, which shows the log mixin at work.
    setup = await processGatewaySetup({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_SERVICE_NAME: SERVICE_NAME,
      OTEL_BSP_SCHEDULE_DELAY: "50",
      LOG_LEVEL: "debug",
      ALERT_WEBHOOK_ALLOW_HOSTS: "127.0.0.1",
    });
    gateway = await startGatewayProcess(setup.env);
  });

  after(async () => {
    await gateway?.stop();
    await receiver?.close();
    if (setup) await dropBrokerSession(MOSQUITTO_URL, `gateway-${setup.replicaId}`);
  });

  /** The spans of the trace that holds the command's spans, once `names` are all among them. */
  async function traceOf(commandId: string, names: string[]): Promise<ReceivedSpan[]> {
    const current = () => {
      const traceIds = new Set(receiver.spans.filter((s) => s.attributes["command.id"] === commandId).map((s) => s.traceId));
      return { traceIds, spans: receiver.spans.filter((s) => traceIds.has(s.traceId)) };
    };
    await receiver.waitFor(() => names.every((name) => current().spans.some((s) => s.name === name)), `spans ${names.join(", ")} of command ${commandId}`);
    const { traceIds, spans } = current();
    assert.equal(traceIds.size, 1, `the command's spans are in one trace: ${[...traceIds].join(", ")}`);
    return spans;
  }

  /** The trace and span ids of the gateway's log lines with message `msg` that mention `deviceId`. */
  function loggedSpans(msg: string, deviceId: string): Array<{ trace_id?: string; span_id?: string }> {
    return gateway
      .output()
      .split("\n")
      .filter((line) => line.includes(`"msg":${JSON.stringify(msg)}`) && line.includes(deviceId))
      .map((line) => JSON.parse(line) as { trace_id?: string; span_id?: string })
      .map(({ trace_id, span_id }) => ({ trace_id, span_id }));
  }

  function one(spans: ReceivedSpan[], name: string, where: (s: ReceivedSpan) => boolean = () => true): ReceivedSpan {
    const found = spans.filter((s) => s.name === name && where(s));
    assert.equal(found.length, 1, `one ${name} span in ${spans.map((s) => s.name).join(", ")}`);
    return found[0]!;
  }

  it("one sendCommand to a device that echoes traceparent: request → store → publish → DELIVERED → SUCCEEDED in one trace", async () => {
    const deviceId = uniqueName("th-");
    await setup.admin.data(RegisterDeviceDocument, { input: { id: deviceId, site: "site-a", model: "thermostat" } });
    const device = createSimulatedDevice({ deviceId, model: "thermostat", brokerUrl: MOSQUITTO_URL, topicPrefix: setup.prefix, latencyMs: [0, 0], failRate: 0 });
    await device.start();
    try {
      const { sendCommand } = await setup.admin.data(SendCommandDocument, { input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 21 } } });
      await waitForStatus(setup.admin, sendCommand.id, "SUCCEEDED");
      const spans = await traceOf(sendCommand.id, ["mutation SendCommand", "command.publish", "command.reply DELIVERED", "command.reply SUCCEEDED"]);
      await receiver.waitFor(() => traceOfSpans(receiver.spans, spans[0]!.traceId).some((s) => announces(s, "SUCCEEDED")), "the span that announced SUCCEEDED");
      const trace = traceOfSpans(receiver.spans, spans[0]!.traceId);

      const request = one(trace, "mutation SendCommand");
      assert.equal(request.parentSpanId, "", "the GraphQL request is the trace's root");
      assert.equal(request.kind, SPAN_KIND.SERVER);
      assert.equal(request.service, SERVICE_NAME, "OTEL_SERVICE_NAME names the service");
      const send = one(trace, "command.send");
      assert.equal(send.parentSpanId, request.spanId, "command.send under the GraphQL operation");
      assert.deepEqual(
        send.events.map((e) => e.name).filter((name) => name.startsWith("command.")),
        ["command.authorize", "command.validate"],
        "the CASL check, then validation, are moments of command.send",
      );
      const insert = one(trace, "store commands.insert");
      assert.equal(insert.parentSpanId, send.spanId, "the store insert under command.send");
      assert.equal(insert.kind, SPAN_KIND.CLIENT);
      const publish = one(trace, "command.publish");
      assert.equal(publish.parentSpanId, send.spanId, "the publish joins the command's trace from its stored traceparent");
      assert.equal(publish.kind, SPAN_KIND.PRODUCER);
      for (const status of ["DELIVERED", "SUCCEEDED"]) {
        const reply = one(trace, `command.reply ${status}`);
        assert.equal(reply.parentSpanId, publish.spanId, `the ${status} reply under the publish (the device echoed its traceparent)`);
        assert.equal(reply.kind, SPAN_KIND.CONSUMER);
        assert.equal(reply.attributes["command.reply.traceparent_echoed"], true);
        assert.equal(reply.attributes["command.reply.outcome"], "applied");
      }
      const byId = new Map(trace.map((s) => [s.spanId, s]));
      const finalWrite = one(trace, "store commands.update", (s) => s.attributes["command.status"] === "SUCCEEDED");
      assert.ok(byId.get(finalWrite.parentSpanId)?.name.startsWith("command.reply"), "the SUCCEEDED write under a reply span");
      assert.ok(announces(send, "QUEUED"), "the QUEUED subscription event is a moment of command.send");
      const announcedSucceeded = trace.filter((s) => announces(s, "SUCCEEDED"));
      assert.deepEqual(announcedSucceeded.map((s) => s.spanId), [finalWrite.parentSpanId], "the SUCCEEDED subscription event is a moment of the reply whose write stored it");
      for (const span of trace) assert.ok(span.parentSpanId === "" || byId.has(span.parentSpanId), `${span.name}'s parent is in the trace`);
    } finally {
      await device.stop({ graceful: true });
    }
  });

  it("a device that does not echo traceparent: its replies join the trace by command id, and logs in a span carry its ids", async () => {
    const deviceId = uniqueName("raw-");
    await setup.admin.data(RegisterDeviceDocument, { input: { id: deviceId, site: "site-a", model: "thermostat" } });
    const topics = createTopics(setup.prefix);
    // A device written without the SDK: it answers every command, DELIVERED twice (the second is refused), without traceparent.
    const received: Array<Record<string, unknown>> = [];
    const raw: MqttClient = await mqtt.connectAsync(MOSQUITTO_URL, { clientId: deviceId, clean: true, reconnectPeriod: 0 });
    try {
      raw.on("message", (_topic, payload) => {
        const command = JSON.parse(payload.toString()) as { id: string; attempt: number };
        received.push(command);
        const reply = (body: object) => raw.publish(topics.replies(deviceId), JSON.stringify({ id: command.id, attempt: command.attempt, ...body }), { qos: 1 });
        reply({ status: "DELIVERED" });
        reply({ status: "SUCCEEDED", result: { setpoint: 20 } });
        reply({ status: "DELIVERED" });
      });
      await raw.subscribeAsync(topics.commands(deviceId), { qos: 1 });
      await raw.publishAsync(topics.presence(deviceId), JSON.stringify({ online: true }), { qos: 1, retain: true });

      const { sendCommand } = await setup.admin.data(SendCommandDocument, { input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 20 } } });
      await waitForStatus(setup.admin, sendCommand.id, "SUCCEEDED");
      const spans = await traceOf(sendCommand.id, ["command.send", "command.publish", "command.reply DELIVERED", "command.reply SUCCEEDED"]);
      await receiver.waitFor(() => traceOfSpans(receiver.spans, spans[0]!.traceId).filter((s) => s.name === "command.reply DELIVERED").length === 2, "the refused DELIVERED's span");
      const trace = traceOfSpans(receiver.spans, spans[0]!.traceId);
      const send = one(trace, "command.send");
      const publish = one(trace, "command.publish");

      assert.equal(received.length, 1);
      const [, traceId, parentId] = String(received[0]!.traceparent).split("-");
      assert.deepEqual([traceId, parentId], [publish.traceId, publish.spanId], "the command message carries the publish span's traceparent");
      const replies = trace.filter((s) => s.name.startsWith("command.reply"));
      assert.equal(replies.length, 3);
      for (const reply of replies) {
        assert.equal(reply.parentSpanId, send.spanId, `${reply.name} under the request that stored the command`);
        assert.equal(reply.attributes["command.reply.traceparent_echoed"], false);
        assert.equal(reply.attributes["command.id"], sendCommand.id);
      }
      const refused = one(trace, "command.reply DELIVERED", (s) => s.attributes["command.reply.outcome"] === "not_allowed_in_state");

      assert.deepEqual(loggedSpans("reply rejected", deviceId), [{ trace_id: refused.traceId, span_id: refused.spanId }], "the refusal's log line names its span");
    } finally {
      await raw.publishAsync(topics.presence(deviceId), "", { qos: 1, retain: true });
      await raw.endAsync();
    }
  });

  it("a rule-fired command's trace starts at the telemetry message; a fleet child's trace links to the fleet command's", async () => {
    const deviceId = uniqueName("auto-");
    await setup.admin.data(RegisterDeviceDocument, { input: { id: deviceId, site: "site-a", model: "thermostat" } });
    const device = createSimulatedDevice({ deviceId, model: "thermostat", brokerUrl: MOSQUITTO_URL, topicPrefix: setup.prefix, latencyMs: [0, 0], failRate: 0 });
    await device.start();
    try {
      await setup.admin.data(CreateRuleDocument, {
        input: { name: "too hot", deviceId, when: { temperature: { $gt: 30 } }, commandType: "thermostat.setTemperature", commandPayload: { celsius: 18 } },
      });
      await device.publishTelemetry({ temperature: 35 });
      let fired: string | undefined;
      await waitUntil("the rule fired", async () => {
        const { commands } = await setup.admin.data(CommandsDocument, { filter: { deviceId, source: "AUTOMATION" }, first: 10 });
        fired = commands.edges[0]?.node.id;
        return fired !== undefined;
      }, 20_000);
      const ruleTrace = await traceOf(fired!, ["telemetry.message", "command.send", "command.publish"]);
      const telemetry = one(ruleTrace, "telemetry.message");
      assert.equal(telemetry.parentSpanId, "", "the telemetry message is the trace's root");
      assert.equal(telemetry.kind, SPAN_KIND.CONSUMER);
      assert.equal(one(ruleTrace, "command.send").parentSpanId, telemetry.spanId, "the rule's command under the message that fired it");
      assert.deepEqual(loggedSpans("rule fired", deviceId), [{ trace_id: telemetry.traceId, span_id: telemetry.spanId }], "the rule's log line names the message's span");

      const { createFleetCommand: fleet } = await setup.admin.data(CreateFleetCommandDocument, {
        input: { name: "setpoint", target: { deviceIds: [deviceId] }, type: "thermostat.setTemperature", payload: { celsius: 19 } },
      });
      await receiver.waitFor(
        () => receiver.spans.some((s) => s.name === "fleet.child" && s.attributes["fleet_command.id"] === fleet.id) && receiver.spans.some((s) => s.name === "mutation CreateFleetCommand"),
        "the fleet child's span and the fleet request's",
      );
      const child = one(receiver.spans, "fleet.child", (s) => s.attributes["fleet_command.id"] === fleet.id);
      const created = one(receiver.spans, "mutation CreateFleetCommand");
      assert.equal(child.parentSpanId, "", "a fleet child is a trace of its own");
      assert.notEqual(child.traceId, created.traceId);
      assert.deepEqual(child.links, [{ traceId: created.traceId, spanId: created.spanId }], "linked to the request that created the fleet command");
      await receiver.waitFor(() => receiver.spans.some((s) => s.traceId === child.traceId && s.name === "command.send"), "the child's command.send");
      assert.equal(one(receiver.spans, "command.send", (s) => s.traceId === child.traceId).parentSpanId, child.spanId);
    } finally {
      await device.stop({ graceful: true });
    }
  });

  it("a refused sendCommand: command.send is an error, with the check it passed and not the one it failed", async () => {
    const deviceId = uniqueName("bad-");
    await setup.admin.data(RegisterDeviceDocument, { input: { id: deviceId, site: "site-a", model: "thermostat" } });
    const code = await setup.admin.errorCode(SendCommandDocument, { input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: "hot" } } });
    assert.equal(code, "BAD_USER_INPUT");
    await receiver.waitFor(() => receiver.spans.some((s) => s.name === "command.send" && s.attributes["command.device_id"] === deviceId), "the refused command.send");
    const send = one(receiver.spans, "command.send", (s) => s.attributes["command.device_id"] === deviceId);
    assert.equal(send.statusCode, 2, "command.send is an error");
    const events = send.events.map((e) => e.name);
    assert.ok(events.includes("command.authorize") && !events.includes("command.validate"), `authorized, not validated: ${events.join(", ")}`);
    assert.ok(events.includes("exception"), "the refusal is recorded as the span's exception");
  });

  it("a sendCommand over WebSocket: the operation is the trace's root, named as over HTTP", async () => {
    const deviceId = uniqueName("ws-");
    await setup.admin.data(RegisterDeviceDocument, { input: { id: deviceId, site: "site-a", model: "thermostat" } });
    const client = setup.admin.ws();
    try {
      const result = await new Promise<{ data?: { sendCommand: { id: string } } | null; errors?: unknown }>((resolve, reject) => {
        client.subscribe<{ sendCommand: { id: string } }>(
          { query: print(SendCommandDocument), variables: { input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 23 } } } },
          { next: resolve, error: reject, complete: () => undefined },
        );
      });
      assert.equal(result.errors, undefined);
      const spans = await traceOf(result.data!.sendCommand.id, ["mutation SendCommand", "command.send"]);
      const operation = one(spans, "mutation SendCommand");
      assert.equal(operation.parentSpanId, "");
      assert.equal(operation.kind, SPAN_KIND.SERVER);
      assert.equal(operation.attributes["network.protocol.name"], "websocket");
      assert.equal(one(spans, "command.send").parentSpanId, operation.spanId, "command.send under the WebSocket operation");
    } finally {
      await client.dispose();
    }
  });

  it("a timed-out command: the timeout, its alert and the webhook delivery are in the command's trace, and the receiver gets the attempt's traceparent", async () => {
    const hooks = await WebhookReceiver.start();
    const deviceId = uniqueName("mute-");
    await setup.admin.data(RegisterDeviceDocument, { input: { id: deviceId, site: "site-a", model: "thermostat" } });
    const topics = createTopics(setup.prefix);
    // Online, takes the command, never answers.
    const mute: MqttClient = await mqtt.connectAsync(MOSQUITTO_URL, { clientId: deviceId, clean: true, reconnectPeriod: 0 });
    try {
      await setup.admin.data(CreateAlertWebhookDocument, { url: hooks.url, kinds: ["TIMED_OUT"] });
      await mute.subscribeAsync(topics.commands(deviceId), { qos: 1 });
      await mute.publishAsync(topics.presence(deviceId), JSON.stringify({ online: true }), { qos: 1, retain: true });
      const { sendCommand } = await setup.admin.data(SendCommandDocument, { input: { deviceId, type: "thermostat.setTemperature", payload: { celsius: 22 }, timeoutSeconds: 1 } });
      await waitForStatus(setup.admin, sendCommand.id, "TIMED_OUT");
      await hooks.waitFor(() => hooks.received.length === 1, "the TIMED_OUT alert's delivery");
      const spans = await traceOf(sendCommand.id, ["command.send", "command.timeout", "alert.raise", "alert.webhook.deliver"]);
      const byId = new Map(spans.map((s) => [s.spanId, s]));
      const timeout = one(spans, "command.timeout");
      assert.equal(timeout.parentSpanId, one(spans, "command.send").spanId, "the timeout joins the command's trace from its stored traceparent");
      const raise = one(spans, "alert.raise");
      assert.equal(raise.parentSpanId, timeout.spanId, "the alert under the timeout that raised it");
      assert.equal(raise.attributes["alert.kind"], "TIMED_OUT");
      const deliver = one(spans, "alert.webhook.deliver");
      assert.equal(deliver.parentSpanId, raise.spanId, "the delivery attempt under the raise that derived it");
      assert.equal(deliver.kind, SPAN_KIND.CLIENT);
      assert.equal(deliver.attributes["alert.delivery.outcome"], "success");
      assert.equal(deliver.attributes["alert.delivery.id"], hooks.received[0]!.deliveryId);
      const [, traceId, parentId] = String(hooks.received[0]!.traceparent).split("-");
      assert.deepEqual([traceId, parentId], [deliver.traceId, deliver.spanId], "the receiver gets the attempt's traceparent");
      const timedOutWrites = spans.filter((s) => s.name === "store commands.update" && s.attributes["command.status"] === "TIMED_OUT");
      assert.deepEqual(
        timedOutWrites.map((s) => byId.get(s.parentSpanId)?.name).sort(),
        ["alert.raise", "command.timeout"],
        "the TIMED_OUT write under the timeout, and the one that clears the alert mark under the raise",
      );
      assert.ok(announces(timeout, "TIMED_OUT"), "the TIMED_OUT subscription event is a moment of the timeout");
    } finally {
      await mute.publishAsync(topics.presence(deviceId), "", { qos: 1, retain: true });
      await mute.endAsync();
      await hooks.close();
    }
  });
});

/** Whether the span recorded the subscription event that announced `status`. */
function announces(span: ReceivedSpan, status: string): boolean {
  return span.events.some((e) => e.name === "subscription commandUpdated" && e.attributes["command.status"] === status);
}

function traceOfSpans(spans: ReceivedSpan[], traceId: string): ReceivedSpan[] {
  return spans.filter((s) => s.traceId === traceId);
}
