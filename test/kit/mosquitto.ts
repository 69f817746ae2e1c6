import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { findFreePort } from "../../src/embedded/free-port";

export interface PrivateMosquitto {
  url: string;
  port: number;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
}

/**
 * A Mosquitto of the test's own on 127.0.0.1 (a free port, or `port` to come back on the same one),
 * configured in `dir` with `conf` lines added, for tests that restart the broker or need an ACL.
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
  const child = spawn("mosquitto", ["-c", confFile], { stdio: ["ignore", "ignore", "pipe"] });
  const exited = new Promise<void>((resolveExit) => child.once("exit", () => resolveExit()));
  let log = "";
  await new Promise<void>((resolveStarted, reject) => {
    child.stderr!.on("data", (chunk) => {
      log += chunk;
      if (/running/.test(log)) resolveStarted();
    });
    void exited.then(() => reject(new Error(`mosquitto exited: ${log}`)));
  });
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
