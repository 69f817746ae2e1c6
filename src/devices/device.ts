/** A registered device (CONTRACT §3). Its id is its MQTT client id, unique across tenants. */
export interface Device {
  id: string;
  tenant: string;
  site: string;
  model: string;
  online: boolean;
  lastSeenAt?: Date;
  createdAt: Date;
  /** State the device reported (CONTRACT §6.2): SUCCEEDED results' state fields and telemetry's `state`, merged. */
  reported?: Record<string, unknown>;
  /** When `reported` last changed. */
  stateUpdatedAt?: Date;
}

/** What a subscriber to a device's updates is filtered on; the device itself is read when delivered. */
export type DeviceRef = Pick<Device, "id" | "tenant" | "site">;
