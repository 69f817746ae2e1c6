import { spawn } from "node:child_process";

export type SqlValue = string | number | null;

export interface SqlStatement {
  sql: string;
  args?: SqlValue[];
}

export interface SqlResult {
  columns: string[];
  rows: SqlValue[][];
  /** Rows changed by a statement that returns none. */
  changes: number;
}

/** A statement the helper reports as failed, with SQLite's own message. */
export class SqlError extends Error {
  constructor(
    message: string,
    readonly statement: SqlStatement | undefined,
  ) {
    super(message);
    this.name = "SqlError";
  }
}

const HELPER_TIMEOUT_MS = 90_000;

/**
 * Runs SQL on one of FerretDB's SQLite files through src/embedded/sqlite-helper (Node 20 has no SQLite).
 *
 * One process per call, not a long-lived sidecar: the gateway needs SQL only at start-up (tuning, checks) and for the
 * few indexed id lookups (start-up rebuild, the once-a-minute safety net, retention batches), so a ~10 ms spawn is
 * noise, and there is no second child to supervise, restart or leak, nor a framing protocol to get wrong. The file
 * is open in FerretDB (WAL): the helper's reads see committed rows, its writes wait on SQLite's busy timeout.
 */
export class SqliteHelper {
  constructor(private readonly binary: string) {}

  /** Runs the statements in order on one connection; in one IMMEDIATE transaction when `transaction` is set. */
  async run(databaseFile: string, statements: SqlStatement[], { transaction = false } = {}): Promise<SqlResult[]> {
    const request = JSON.stringify({ database: databaseFile, transaction, statements });
    const { code, stdout, stderr } = await spawnWithInput(this.binary, request);
    const response = parseResponse(stdout);
    if (code === 0 && response?.results) {
      return response.results.map((r) => ({ columns: r.columns ?? [], rows: r.rows ?? [], changes: r.changes ?? 0 }));
    }
    const reason = response?.error ?? (stderr.trim() || `exit code ${String(code)}`);
    throw new SqlError(`SQLite helper: ${reason}`, response?.statement !== undefined ? statements[response.statement] : undefined);
  }

  /** The rows of a single query. */
  async query(databaseFile: string, sql: string, args: SqlValue[] = []): Promise<SqlValue[][]> {
    const [result] = await this.run(databaseFile, [{ sql, args }]);
    return result.rows;
  }
}

interface HelperResponse {
  results?: Array<Partial<SqlResult>>;
  error?: string;
  statement?: number;
}

function parseResponse(stdout: string): HelperResponse | undefined {
  try {
    return JSON.parse(stdout) as HelperResponse;
  } catch {
    return undefined;
  }
}

function spawnWithInput(binary: string, input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [], { stdio: ["pipe", "pipe", "pipe"], timeout: HELPER_TIMEOUT_MS });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.stdin.on("error", () => undefined); // it exited before reading: its exit code says why
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}
