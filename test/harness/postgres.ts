// Test harness for PostgreSQL: a throwaway server (Debian `postgresql`) per test file, on a free loopback port, with
// its data directory and unix socket in one temporary directory, trust authentication (loopback and that socket
// only), and createDatabase() handing each caller a fresh database. stop() removes everything. A missing server
// fails with the Debian package to install; it never skips (ARCHITECTURE.md §6).
//
// Root: PostgreSQL refuses to run as root (it would give the superuser a root shell). CI runs as root on a clean
// Debian, so when we are root the server's processes are spawned with the uid/gid of the `postgres` system user that
// the Debian package creates (Node's spawn uid/gid, which also drops root's supplementary groups), and the temporary
// directory is handed to that user (and is the processes' working directory: the checkout, e.g. under /root, may be
// closed to that user, and initdb resolves its own path from the working directory). No sudo, runuser or su. The
// temporary directory's parents (TMPDIR, /tmp by default) must be traversable by `postgres`.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import pg from "pg";
import { MissingProgramError } from "./programs.js";
import { freePort } from "./servers.js";

/** The Debian package that provides initdb and postgres (in /usr/lib/postgresql/<major>/bin, not on PATH). */
export const POSTGRES_PACKAGE = "postgresql";

export interface PostgresServerOptions {
  /**
   * Durable (fsync on, synchronous commit): what a benchmark of commit rates must use. The default is off: tests
   * check behaviour, not crash safety of the disk, and fsync=off with synchronous_commit=off and full_page_writes=off
   * makes initdb, CREATE DATABASE and every commit several times faster. A killed *connection* still loses nothing
   * committed with these settings; only an OS crash could.
   */
  readonly durable?: boolean;
  readonly readyTimeoutMs?: number;
}

export interface PostgresServer {
  readonly port: number;
  readonly dataDir: string;
  readonly binDir: string;
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  url(database?: string): string;
  /** A new, empty database with a unique name; returns its connection string. */
  createDatabase(prefix?: string): Promise<string>;
  /** Runs SQL as the superuser on `database` (default postgres), outside any code under test. */
  sql(sqlText: string, database?: string): Promise<pg.QueryResult>;
  /** Fast shutdown (SIGINT; SIGKILL after 10 s) and removal of the temporary directory. */
  stop(): Promise<void>;
  output(): string;
}

const OUTPUT_KEEP_CHARS = 8192;

function missing(problem: string): MissingProgramError {
  const install = `install it with: apt-get install ${POSTGRES_PACKAGE}`;
  if (process.env.CI) return new MissingProgramError(`${problem}; the CI image must provide Debian package ${POSTGRES_PACKAGE} (${install})`);
  return new MissingProgramError(`${problem}; ${install} (PostgreSQL tests never skip)`);
}

/**
 * $PG_BIN_DIR when set; otherwise the newest Debian /usr/lib/postgresql/<major>/bin, then any PATH directory with
 * initdb (other distributions put it there). The directory must hold both initdb and postgres.
 */
export function requirePostgresBinDir(): string {
  const explicit = process.env.PG_BIN_DIR;
  const debian = existsSync("/usr/lib/postgresql")
    ? readdirSync("/usr/lib/postgresql")
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
        .map((v) => join("/usr/lib/postgresql", v, "bin"))
    : [];
  const onPath = (process.env.PATH ?? "").split(delimiter).filter((dir) => dir !== "");
  const candidates = explicit ? [explicit] : [...debian, ...onPath];
  for (const dir of candidates) {
    if (!existsSync(join(dir, "initdb")) || !existsSync(join(dir, "postgres"))) continue;
    const probe = spawnSync(join(dir, "postgres"), ["--version"], { timeout: 10_000, encoding: "utf8" });
    if (probe.status === 0) return dir;
  }
  throw missing(explicit ? `PG_BIN_DIR=${explicit} has no working initdb and postgres` : "initdb and postgres were not found under /usr/lib/postgresql/*/bin or on PATH");
}

interface RunAs {
  readonly uid: number;
  readonly gid: number;
}

/** When we are root: the `postgres` system user's ids from /etc/passwd (the Debian package creates that user). */
function serverUser(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  const [, , uid, gid] = line?.split(":") ?? [];
  if (uid === undefined || gid === undefined) throw missing("running as root, and there is no `postgres` system user to run the server as");
  return { uid: Number(uid), gid: Number(gid) };
}

function runToEnd(program: string, args: readonly string[], runAs: RunAs | undefined, cwd: string, what: string): void {
  const r = spawnSync(program, [...args], { cwd, encoding: "utf8", timeout: 60_000, ...(runAs ?? {}) });
  if (r.status !== 0) throw new Error(`${what} failed (${String(r.status ?? r.signal ?? r.error?.message)}):\n${r.stdout}\n${r.stderr}`);
}

/** Settings for a test server; the durable ones are PostgreSQL's defaults. */
function serverSettings(port: number, socketDir: string, durable: boolean): string[] {
  const settings: Record<string, string> = {
    port: String(port),
    listen_addresses: "127.0.0.1",
    unix_socket_directories: socketDir,
    max_connections: "100",
    shared_buffers: "64MB",
    // Many small CREATE DATABASE calls (one per test file) would otherwise checkpoint and log each time.
    log_min_messages: "warning",
    logging_collector: "off",
    ...(durable ? { fsync: "on", synchronous_commit: "on", full_page_writes: "on" } : { fsync: "off", synchronous_commit: "off", full_page_writes: "off" }),
  };
  return Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]);
}

let databaseCounter = 0;

export async function startPostgres(options: PostgresServerOptions = {}): Promise<PostgresServer> {
  const binDir = requirePostgresBinDir();
  const runAs = serverUser();
  const root = mkdtempSync(join(tmpdir(), "agri-postgres-"));
  const dataDir = join(root, "data");
  if (runAs) chownSync(root, runAs.uid, runAs.gid);
  chmodSync(root, 0o700);
  let child: ChildProcess | undefined;
  let output = "";
  try {
    // --no-sync: initdb's own fsyncs are wasted on a directory deleted after the test run.
    runToEnd(join(binDir, "initdb"), ["-D", dataDir, "-U", "postgres", "--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C"], runAs, root, "initdb");
    const port = await freePort();
    const proc = spawn(join(binDir, "postgres"), ["-D", dataDir, ...serverSettings(port, root, options.durable ?? false)], {
      stdio: ["ignore", "pipe", "pipe"],
      cwd: root,
      ...(runAs ?? {}),
    });
    child = proc;
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString("utf8")).slice(-OUTPUT_KEEP_CHARS);
    };
    proc.stdout.on("data", keep);
    proc.stderr.on("data", keep);
    let exitNote: string | undefined;
    const exited = new Promise<void>((resolve) => {
      proc.once("exit", (code, signal) => {
        exitNote = `exited with ${String(code ?? signal)}`;
        resolve();
      });
      proc.once("error", (err) => {
        exitNote = `could not start: ${err.message}`;
        resolve();
      });
    });
    const url = (database = "postgres"): string => `postgres://postgres@127.0.0.1:${port}/${database}`;

    const sql = async (sqlText: string, database?: string): Promise<pg.QueryResult> => {
      const client = new pg.Client({ connectionString: url(database) });
      await client.connect();
      try {
        return await client.query(sqlText);
      } finally {
        await client.end();
      }
    };

    const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
    for (;;) {
      if (exitNote !== undefined) throw new Error(`postgres ${exitNote} before it was ready; output:\n${output}`);
      try {
        await sql("SELECT 1");
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`postgres did not accept connections on port ${port} in time; output:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }

    // If the test process exits without stop() (a crash, a runner timeout), take the server down with it rather than
    // leave a postmaster and its directory behind.
    const onExit = (): void => {
      proc.kill("SIGKILL");
      rmSync(root, { recursive: true, force: true });
    };
    process.once("exit", onExit);

    const stop = async (): Promise<void> => {
      process.off("exit", onExit);
      if (exitNote === undefined) {
        // SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, disconnect clients, exit.
        proc.kill("SIGINT");
        const killTimer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(killTimer);
      }
      rmSync(root, { recursive: true, force: true });
    };

    return {
      port,
      dataDir,
      binDir,
      url,
      sql,
      createDatabase: async (prefix = "test") => {
        databaseCounter += 1;
        const name = `${prefix.replace(/[^a-z0-9_]/gi, "_").toLowerCase()}_${process.pid}_${databaseCounter}`;
        await sql(`CREATE DATABASE ${name}`);
        return url(name);
      },
      stop,
      output: () => output,
    };
  } catch (error) {
    child?.kill("SIGKILL");
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
}
