/** A registered device (CONTRACT §3). Its id is its MQTT client id, unique across tenants. */
export interface Device {
  id: string;
  tenant: string;
  site: string;
  model: string;
  online: boolean;
  lastSeenAt?: Date;
  createdAt: Date;
}
