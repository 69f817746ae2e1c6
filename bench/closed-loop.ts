import { FINAL_STATUSES } from "../src/commands/state-machine";

/** Where a closed-loop worker stops waiting: a final status, or TIMED_OUT (which only a late reply would change). */
const ENDS: ReadonlySet<string> = new Set([...FINAL_STATUSES, "TIMED_OUT"]);

/** A command's end as a subscriber saw it: when its final transition arrived, and which it was. */
export interface Settled {
  at: number;
  status: string;
}

/**
 * The final transitions a subscriber receives, matched to the commands waiting for them; a final
 * transition may arrive before the send that caused it has returned.
 */
export class Completions {
  private readonly waiting = new Map<string, (settled: Settled) => void>();
  private readonly early = new Map<string, Settled>();

  /** Call for every transition received; non-final ones are ignored. */
  transition(id: string, status: string): void {
    if (!ENDS.has(status)) return;
    const settled = { at: performance.now(), status };
    const waiter = this.waiting.get(id);
    if (waiter) {
      this.waiting.delete(id);
      waiter(settled);
    } else this.early.set(id, settled);
  }

  /** Resolves with the command's final transition, or `{ status: "LOST" }` after `timeoutMs`. */
  wait(id: string, timeoutMs: number): Promise<Settled> {
    const early = this.early.get(id);
    if (early) {
      this.early.delete(id);
      return Promise.resolve(early);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve({ at: performance.now(), status: "LOST" });
      }, timeoutMs);
      this.waiting.set(id, (settled) => {
        clearTimeout(timer);
        resolve(settled);
      });
    });
  }
}

/** One side of the comparison as a client sees it: send a command to a device, get its id back. */
export interface Side {
  readonly name: string;
  send(deviceId: string): Promise<string>;
  readonly completions: Completions;
}

export interface RunResult {
  completed: number;
  /** Commands that ended other than SUCCEEDED, whose end never arrived, or whose send was refused. */
  failed: number;
  /** Why commands failed other than by their status, by message: a refused send (the gateway's UNAVAILABLE), a cut-off run. */
  sendErrors: Record<string, number>;
  /** Commands that ended other than SUCCEEDED, by the status they ended with (LOST: no end within the settle timeout). */
  endedAs: Record<string, number>;
  elapsedMs: number;
  /** Send start to the arrival of SUCCEEDED at the subscriber, per completed command, ms. */
  latenciesMs: number[];
}

/** A command whose end has not arrived by then counts as failed: a run never hangs on a lost message. */
const SETTLE_TIMEOUT_MS = 30_000;

/**
 * Closed loop: `concurrency` workers, each sending a command to one of its own devices and waiting for its end, for `durationMs`.
 * A run ends at the latest `settleTimeoutMs` after that, whatever is still in flight counted as failed:
 * an overloaded side (a store answering in minutes) cannot stall the bench.
 */
export async function runClosedLoop(side: Side, deviceIds: readonly string[], concurrency: number, durationMs: number, settleTimeoutMs = SETTLE_TIMEOUT_MS): Promise<RunResult> {
  const latenciesMs: number[] = [];
  let failed = 0;
  let inFlight = 0;
  let over = false;
  const sendErrors: Record<string, number> = {};
  const endedAs: Record<string, number> = {};
  const started = performance.now();
  const until = started + durationMs;
  // Each worker sends only to its own devices (those whose index is the worker's modulo `concurrency`), so no two
  // commands to one device are ever in flight: a newer setpoint would supersede the older (CANCELED), which is the
  // gateway doing its job, not a failure.
  if (concurrency > deviceIds.length) throw new Error(`${concurrency} in flight needs at least as many devices (${deviceIds.length})`);
  const workers = Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      const own = deviceIds.filter((_id, index) => index % concurrency === worker);
      for (let i = 0; performance.now() < until && !over; i++) {
        const deviceId = own[i % own.length]!;
        const start = performance.now();
        inFlight++;
        try {
          const id = await side.send(deviceId);
          const settled = await side.completions.wait(id, settleTimeoutMs);
          if (over) return;
          if (settled.status === "SUCCEEDED") latenciesMs.push(settled.at - start);
          else {
            failed++;
            endedAs[settled.status] = (endedAs[settled.status] ?? 0) + 1;
          }
        } catch (error) {
          if (over) return;
          failed++;
          const message = (error as Error).message.slice(0, 200);
          sendErrors[message] = (sendErrors[message] ?? 0) + 1;
        } finally {
          inFlight--;
        }
      }
    }),
  );
  let timer: NodeJS.Timeout | undefined;
  const cutOff = new Promise<void>((resolve) => (timer = setTimeout(resolve, durationMs + settleTimeoutMs)));
  await Promise.race([workers, cutOff]);
  clearTimeout(timer);
  const elapsedMs = performance.now() - started;
  over = true;
  // Cut off: what is still in flight never ended in time.
  failed += inFlight;
  if (inFlight) sendErrors[`still in flight ${settleTimeoutMs / 1000} s after the run`] = inFlight;
  return { completed: latenciesMs.length, failed, sendErrors, endedAs, elapsedMs, latenciesMs };
}
