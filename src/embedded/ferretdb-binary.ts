import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Logger } from "../logger";

/** Compiled to dist/src/embedded/, so the package root is three levels up. */
const packageRoot = path.resolve(__dirname, "../../..");
const buildScript = path.join(packageRoot, "scripts", "build-ferretdb.mjs");

/**
 * Path of the FerretDB binary for the embedded store, built on first use.
 *
 * The logic lives only in scripts/build-ferretdb.mjs (CI runs it before tsc), so this runs that script:
 * its stdout is the path, its progress lines on stderr are passed through. `FERRETDB_BIN` overrides all.
 */
export async function ensureFerretdbBinary(log: Logger): Promise<string> {
  if (!fs.existsSync(buildScript)) throw new Error(`cannot provide FerretDB: ${buildScript} is missing`);
  const { code, stdout, stderr } = await runScript();
  const binary = stdout.trim().split("\n").pop();
  if (code !== 0 || !binary) {
    const reason = stderr.trim().split("\n").pop() || `exit code ${String(code)}`;
    throw new Error(`cannot provide FerretDB for the embedded store: ${reason}`);
  }
  log.debug({ binary }, "FerretDB binary");
  return binary;
}

function runScript(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [buildScript, "--print-path"], {
      cwd: packageRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      process.stderr.write(chunk);
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
