/** Topic names of the device protocol (CONTRACT §5), built in one place for the gateway, the broker ACL and the device SDK. */
export interface Topics {
  readonly prefix: string;
  commands(deviceId: string): string;
  replies(deviceId: string): string;
  presence(deviceId: string): string;
  telemetry(deviceId: string): string;
  alerts(): string;
  /** Wildcard filter for one kind of device topic, e.g. `iot/devices/+/replies`. */
  allDevices(kind: DeviceTopicKind): string;
  /** Internal topics for the gateway's event bus between replicas; only gateway connections may use them. */
  bus(channel: string): string;
  busFilter(): string;
  /** Parses `{p}/devices/{id}/{kind}`; undefined for anything else. */
  parseDeviceTopic(topic: string): { deviceId: string; kind: DeviceTopicKind } | undefined;
}

export type DeviceTopicKind = "commands" | "replies" | "presence" | "telemetry";
const deviceTopicKinds: ReadonlySet<string> = new Set<DeviceTopicKind>(["commands", "replies", "presence", "telemetry"]);

export function createTopics(prefix: string): Topics {
  const device = (id: string, kind: DeviceTopicKind) => `${prefix}/devices/${id}/${kind}`;
  const prefixParts = prefix.split("/").length;
  return {
    prefix,
    commands: (id) => device(id, "commands"),
    replies: (id) => device(id, "replies"),
    presence: (id) => device(id, "presence"),
    telemetry: (id) => device(id, "telemetry"),
    alerts: () => `${prefix}/alerts`,
    allDevices: (kind) => `${prefix}/devices/+/${kind}`,
    bus: (channel) => `${prefix}/$gateway/bus/${channel}`,
    busFilter: () => `${prefix}/$gateway/bus/#`,
    parseDeviceTopic(topic) {
      if (!topic.startsWith(`${prefix}/devices/`)) return undefined;
      const parts = topic.split("/").slice(prefixParts);
      if (parts.length !== 3 || parts[0] !== "devices" || !parts[1] || !deviceTopicKinds.has(parts[2]!)) return undefined;
      return { deviceId: parts[1], kind: parts[2] as DeviceTopicKind };
    },
  };
}

/** Device ids become MQTT topic levels and client ids: no wildcards, separators or control characters. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
