/** Statuses after which a command changes no more (CONTRACT §4). */
const FINAL = new Set(["SUCCEEDED", "FAILED", "TIMED_OUT", "EXPIRED", "CANCELED"]);

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
    if (!FINAL.has(status)) return;
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
  /** Why sends were refused, by message, e.g. the gateway's UNAVAILABLE when its store times out. */
  sendErrors: Record<string, number>;
  elapsedMs: number;
  /** Send start to the arrival of SUCCEEDED at the subscriber, per completed command, ms. */
  latenciesMs: number[];
}

/** A command whose end has not arrived by then counts as failed: a run never hangs on a lost message. */
const SETTLE_TIMEOUT_MS = 30_000;

/** Closed loop: `concurrency` workers, each sending a command and waiting for its final transition, for `durationMs`. */
export async function runClosedLoop(side: Side, deviceIds: readonly string[], concurrency: number, durationMs: number): Promise<RunResult> {
  const latenciesMs: number[] = [];
  let failed = 0;
  const sendErrors: Record<string, number> = {};
  const started = performance.now();
  const until = started + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let i = 0; performance.now() < until; i++) {
        const deviceId = deviceIds[(worker + i * concurrency) % deviceIds.length]!;
        const start = performance.now();
        let id: string;
        try {
          id = await side.send(deviceId);
        } catch (error) {
          failed++;
          const message = (error as Error).message.slice(0, 200);
          sendErrors[message] = (sendErrors[message] ?? 0) + 1;
          continue;
        }
        const settled = await side.completions.wait(id, SETTLE_TIMEOUT_MS);
        if (settled.status === "SUCCEEDED") latenciesMs.push(settled.at - start);
        else failed++;
      }
    }),
  );
  return { completed: latenciesMs.length, failed, sendErrors, elapsedMs: performance.now() - started, latenciesMs };
}
