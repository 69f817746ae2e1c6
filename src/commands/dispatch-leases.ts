/**
 * One replica at a time dispatches a device's commands. With several replicas the lease lives in the
 * store (DispatchLeaseRepository); a gateway that is the store's sole writer (it started the embedded
 * store, which locks its data directory) has nobody to share with, so its leases cost no store write.
 */
export interface DispatchLeases {
  /** Every acquire succeeds without the store (a sole writer's): a lease can be taken in memory at once. */
  readonly alwaysGranted: boolean;
  /** Takes or extends the device's lease for `owner`; `false` when another owner holds it. */
  acquire(deviceId: string, owner: string, now: Date, leaseMs: number, held: boolean): Promise<boolean>;
  release(deviceId: string, owner: string): Promise<void>;
}

/** Leases for a sole writer: always granted, nothing stored. */
export const soleWriterLeases: DispatchLeases = {
  alwaysGranted: true,
  acquire: async () => true,
  release: async () => undefined,
};
