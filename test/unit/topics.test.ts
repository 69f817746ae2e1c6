import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { topicMatches } from "../../src/mqtt/connection";
import { createTopics, DEVICE_ID_PATTERN } from "../../src/mqtt/topics";

describe("topics: builders (CONTRACT §5)", () => {
  const t = createTopics("iot");

  it("prefix iot", () => {
    assert.equal(t.prefix, "iot");
    assert.equal(t.commands("d1"), "iot/devices/d1/commands");
    assert.equal(t.replies("d1"), "iot/devices/d1/replies");
    assert.equal(t.presence("d1"), "iot/devices/d1/presence");
    assert.equal(t.telemetry("d1"), "iot/devices/d1/telemetry");
    assert.equal(t.alerts(), "iot/alerts");
    assert.equal(t.allDevices("replies"), "iot/devices/+/replies");
    assert.equal(t.allDevices("presence"), "iot/devices/+/presence");
  });

  it("multi-level prefix a/b", () => {
    const ab = createTopics("a/b");
    assert.equal(ab.commands("d1"), "a/b/devices/d1/commands");
    assert.equal(ab.replies("d1"), "a/b/devices/d1/replies");
    assert.equal(ab.presence("d1"), "a/b/devices/d1/presence");
    assert.equal(ab.telemetry("d1"), "a/b/devices/d1/telemetry");
    assert.equal(ab.alerts(), "a/b/alerts");
    assert.equal(ab.allDevices("telemetry"), "a/b/devices/+/telemetry");
  });

  it("bus topics stay under the prefix and out of the device namespace", () => {
    assert.equal(t.bus("commands"), "iot/$gateway/bus/commands");
    assert.equal(t.busFilter(), "iot/$gateway/bus/#");
    assert.ok(topicMatches(t.busFilter(), t.bus("x")));
    assert.equal(t.parseDeviceTopic(t.bus("x")), undefined);
  });

  it("each builder's topic matches its allDevices filter", () => {
    for (const kind of ["commands", "replies", "presence", "telemetry"] as const) {
      assert.ok(topicMatches(t.allDevices(kind), t[kind]("dev-9")), kind);
      assert.ok(!topicMatches(t.allDevices(kind), createTopics("other")[kind]("dev-9")), kind);
    }
  });
});

describe("topics: parseDeviceTopic", () => {
  const t = createTopics("iot");
  const ab = createTopics("a/b");

  it("parses every device topic kind with prefix iot", () => {
    for (const kind of ["commands", "replies", "presence", "telemetry"] as const) {
      assert.deepEqual(t.parseDeviceTopic(`iot/devices/dev-1/${kind}`), { deviceId: "dev-1", kind });
    }
  });

  it("parses with a multi-level prefix", () => {
    assert.deepEqual(ab.parseDeviceTopic("a/b/devices/th.1:x/replies"), { deviceId: "th.1:x", kind: "replies" });
  });

  it("round trips the builders", () => {
    assert.deepEqual(ab.parseDeviceTopic(ab.telemetry("v-7")), { deviceId: "v-7", kind: "telemetry" });
  });

  for (const [label, parser, topic] of [
    ["wrong prefix", t, "other/devices/d1/replies"],
    ["prefix only as a string prefix", t, "iotx/devices/d1/replies"],
    ["missing prefix", t, "devices/d1/replies"],
    ["partial multi-level prefix", ab, "a/devices/d1/replies"],
    ["other multi-level prefix", ab, "a/c/devices/d1/replies"],
    ["extra level", t, "iot/devices/d1/replies/extra"],
    ["trailing slash", t, "iot/devices/d1/replies/"],
    ["missing kind", t, "iot/devices/d1"],
    ["unknown kind", t, "iot/devices/d1/status"],
    ["empty id", t, "iot/devices//replies"],
    ["not devices", t, "iot/alerts"],
    ["not devices level", t, "iot/device/d1/replies"],
  ] as const) {
    it(`rejects ${label}: ${topic}`, () => {
      assert.equal(parser.parseDeviceTopic(topic), undefined);
    });
  }
});

describe("topics: DEVICE_ID_PATTERN", () => {
  for (const id of ["d1", "thermostat-01", "A.b_c:d-e", "9", "x".repeat(128)]) {
    it(`accepts ${id.length > 20 ? `${id.length} characters` : id}`, () => assert.ok(DEVICE_ID_PATTERN.test(id)));
  }
  for (const [label, id] of [
    ["+", "dev+1"],
    ["# ", "dev#"],
    ["/", "a/b"],
    ["empty", ""],
    ["leading -", "-dev"],
    ["leading .", ".dev"],
    ["129 characters", "x".repeat(129)],
    ["a space", "dev 1"],
    ["a newline", "dev\n"],
    ["a NUL", "dev\u0000"],
    ["$", "$SYS"],
  ] as const) {
    it(`rejects ${label}`, () => assert.equal(DEVICE_ID_PATTERN.test(id), false));
  }
});

describe("topicMatches", () => {
  it("exact topics", () => {
    assert.equal(topicMatches("iot/devices/d1/replies", "iot/devices/d1/replies"), true);
    assert.equal(topicMatches("iot/devices/d1/replies", "iot/devices/d2/replies"), false);
  });

  it("+ matches exactly one level", () => {
    assert.equal(topicMatches("iot/devices/+/replies", "iot/devices/d1/replies"), true);
    assert.equal(topicMatches("iot/devices/+/replies", "iot/devices/d1/x/replies"), false);
    assert.equal(topicMatches("iot/devices/+/replies", "iot/devices/replies"), false);
    assert.equal(topicMatches("iot/+/+/replies", "iot/devices/d1/replies"), true);
    assert.equal(topicMatches("iot/devices/+", "iot/devices/"), true, "+ matches an empty level");
  });

  it("# matches the rest, including the parent level", () => {
    assert.equal(topicMatches("iot/#", "iot/devices/d1/replies"), true);
    assert.equal(topicMatches("iot/#", "iot"), true);
    assert.equal(topicMatches("#", "anything/at/all"), true);
    assert.equal(topicMatches("iot/#", "other/devices"), false);
    assert.equal(topicMatches("iot/devices/+/#", "iot/devices/d1/replies/extra"), true);
  });

  it("length mismatch without wildcards", () => {
    assert.equal(topicMatches("iot/devices", "iot/devices/d1"), false);
    assert.equal(topicMatches("iot/devices/d1", "iot/devices"), false);
    assert.equal(topicMatches("iot/devices/+/replies", "iot/devices/d1/replies/extra"), false);
  });
});
