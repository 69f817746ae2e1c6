import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { OtlpReceiver } from "../kit/otlp-receiver";

/** An export as the OTLP/HTTP JSON exporter writes it: three spans, one with a link and events (which have no "kind"). */
const EXPORT = {
  resourceSpans: [
    {
      resource: { attributes: [{ key: "service.name", value: { stringValue: "svc" } }] },
      scopeSpans: [
        {
          scope: { name: "iot-gateway" },
          spans: [
            { traceId: "a".repeat(32), spanId: "1".repeat(16), name: "command.send", kind: 1, attributes: [{ key: "kind", value: { stringValue: '"kind":' } }] },
            {
              traceId: "a".repeat(32),
              spanId: "2".repeat(16),
              parentSpanId: "1".repeat(16),
              name: "command.publish",
              kind: 4,
              links: [{ traceId: "b".repeat(32), spanId: "3".repeat(16) }],
              events: [{ name: "subscription commandUpdated", attributes: [{ key: "command.status", value: { stringValue: "QUEUED" } }] }],
            },
          ],
        },
        { scope: { name: "other" }, spans: [{ traceId: "c".repeat(32), spanId: "4".repeat(16), name: "x", kind: 2 }] },
      ],
    },
  ],
};

describe("OTLP receiver (the tests' and the benchmark's collector)", () => {
  const receivers: OtlpReceiver[] = [];
  before(async () => {
    receivers.push(await OtlpReceiver.start(), await OtlpReceiver.start({ keep: false }));
  });
  after(async () => {
    for (const receiver of receivers) await receiver.close();
  });

  const post = (receiver: OtlpReceiver) =>
    fetch(`${receiver.endpoint}/v1/traces`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(EXPORT) });

  it("decodes every span with its events and links", async () => {
    const [keeping] = receivers;
    assert.equal((await post(keeping!)).status, 200);
    assert.deepEqual(
      keeping!.spans.map((s) => [s.name, s.service, s.links.length, s.events.map((e) => e.name)]),
      [
        ["command.send", "svc", 0, []],
        ["command.publish", "svc", 1, ["subscription commandUpdated"]],
        ["x", "svc", 0, []],
      ],
    );
    assert.equal(keeping!.spanCount, 3);
  });

  it("counts the same spans without decoding them (keep: false)", async () => {
    const [, counting] = receivers;
    assert.equal((await post(counting!)).status, 200);
    assert.equal((await post(counting!)).status, 200);
    assert.deepEqual([counting!.spanCount, counting!.requests, counting!.spans.length], [6, 2, 0]);
  });
});
