import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Logger } from "../logger";

/** Compiled to dist/src/embedded/, so the package root is three levels up. */
const packageRoot = path.resolve(__dirname, "../../..");
const buildScript = path.join(packageRoot, "scripts", "build-ferretdb.mjs");

export interface StoreBinaries {
  ferretdb: string;
  /** src/embedded/sqlite-helper: runs SQL on FerretDB's SQLite files. */
  sqliteHelper: string;
}

/**
 * Paths of the FerretDB binary and the SQLite helper for the embedded store, built on first use.
 *
 * The logic lives only in scripts/build-ferretdb.mjs (CI runs it before tsc), so this runs that script:
 * its stdout is the paths as JSON, its progress lines on stderr are passed through. `FERRETDB_BIN` and
 * `SQLITE_HELPER_BIN` override the builds.
 */
export async function ensureStoreBinaries(log: Logger): Promise<StoreBinaries> {
  if (!fs.existsSync(buildScript)) throw new Error(`cannot provide FerretDB: ${buildScript} is missing`);
  const { code, stdout, stderr } = await runScript();
  const binaries = parsePaths(stdout.trim().split("\n").pop() ?? "");
  if (code !== 0 || !binaries) {
    const reason = stderr.trim().split("\n").pop() || `exit code ${String(code)}`;
    throw new Error(`cannot provide FerretDB for the embedded store: ${reason}`);
  }
  log.debug(binaries, "embedded store binaries");
  return binaries;
}

function parsePaths(line: string): StoreBinaries | undefined {
  try {
    const parsed = JSON.parse(line) as Partial<StoreBinaries>;
    return typeof parsed.ferretdb === "string" && typeof parsed.sqliteHelper === "string" ? { ferretdb: parsed.ferretdb, sqliteHelper: parsed.sqliteHelper } : undefined;
  } catch {
    return undefined;
  }
}

function runScript(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [buildScript, "--print-paths"], {
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
