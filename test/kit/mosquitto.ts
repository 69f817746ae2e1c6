import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { findFreePort } from "../../src/embedded/free-port";
import { spawnGroup } from "./process-groups";

const START_TIMEOUT_MS = 15_000;

export interface PrivateMosquitto {
  url: string;
  port: number;
  /** SIGTERM and wait for the exit (SIGKILL to its group after 10 s). */
  stop(): Promise<void>;
}

/**
 * A Mosquitto of the test's own on 127.0.0.1 (a free port, or `port` to come back on the same one),
 * configured in `dir` with `conf` lines added, for tests that restart the broker or need an ACL.
 * It runs in its own process group, killed however the test file ends.
 */
export async function startPrivateMosquitto(dir: string, options: { port?: number; conf?: string[] } = {}): Promise<PrivateMosquitto> {
  const port = options.port ?? (await findFreePort());
  const confFile = join(dir, `mosquitto-${port}.conf`);
  writeFileSync(
    confFile,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "persistence false",
      "log_dest stderr",
      // Run as root (CI), Mosquitto would switch to a user that cannot read the test's private folder.
      ...(process.getuid?.() === 0 ? ["user root"] : []),
      ...(options.conf ?? []),
    ].join("\n") + "\n",
  );
  const mosquitto = spawnGroup("mosquitto", ["-c", confFile], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  try {
    await new Promise<void>((resolveStarted, reject) => {
      const timer = setTimeout(() => reject(new Error(`mosquitto not running within ${START_TIMEOUT_MS / 1000} s: ${log}`)), START_TIMEOUT_MS);
      mosquitto.child.stderr!.on("data", (chunk) => {
        log += chunk;
        if (!/running/.test(log)) return;
        clearTimeout(timer);
        resolveStarted();
      });
      void mosquitto.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`mosquitto exited: ${log}`));
      });
    });
  } catch (error) {
    await mosquitto.stop("SIGKILL", 0);
    throw error;
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    stop: async () => {
      await mosquitto.stop("SIGTERM");
    },
  };
}
