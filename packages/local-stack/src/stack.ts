import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SQSClient } from "@aws-sdk/client-sqs";
import { createPrisma, type PrismaClient } from "@docpipe/db";
import { createLogger, createS3Client, IMAGES_KEY_PATTERN, type Logger, type QueueKey, type QueueUrls } from "@docpipe/queue";
import { LocalStackError } from "./errors.js";
import { MAIN_DATABASE, PostgresCluster, stopOrphanPostmaster } from "./postgres.js";
import { isAlive } from "./process.js";
import { S3RVER_CREDENTIALS, S3Server } from "./s3.js";
import { startSecretsManager, type SecretsManagerServer } from "./secrets-manager.js";
import { createQueues, SqsServer } from "./sqs.js";

/** The repository root: stacks keep their data under `<root>/.local/` (git-ignored). */
export const REPO_ROOT = path.resolve(import.meta.dirname, "../../..");
export const LOCAL_DIR = path.join(REPO_ROOT, ".local");
const MIGRATIONS_DIR = path.join(REPO_ROOT, "prisma/migrations");
const STATE_FILE = "stack.json";

export interface LocalStackOptions {
  /**
   * Names the stack and its data directory. A named stack keeps its data between runs
   * (`pnpm start` uses "dev"); an unnamed one gets a unique name and is ephemeral.
   * @defaultValue `tmp-<pid>-<random>`
   */
  name?: string;
  /** @defaultValue `<repo>/.local/<name>` */
  dataDir?: string;
  /** 0 or unset: a free port, so stacks can run side by side. @defaultValue 0 */
  postgresPort?: number;
  /** @defaultValue 0 */
  s3Port?: number;
  /** @defaultValue 0 */
  sqsPort?: number;
  /** Prefix of every queue name, as QUEUE_PREFIX. @defaultValue "docpipe-" (as infra deploys them) */
  queuePrefix?: string;
  /** Buckets to create; the work and staging buckets are always created. */
  buckets?: string[];
  /** @defaultValue "docpipe-work" */
  workBucket?: string;
  /** @defaultValue "docpipe-staging" */
  stagingBucket?: string;
  /** Delete the data directory on stop (and run Postgres without fsync). @defaultValue true when unnamed */
  ephemeral?: boolean;
  /**
   * Stop the stack on SIGINT/SIGTERM/SIGHUP. When nothing else listens to the signal the process
   * then ends as it would have without the stack. Pass false when the caller stops the stack
   * itself (after its services, so they can flush to the database). @defaultValue true
   */
  handleSignals?: boolean;
  /** @defaultValue a pino logger at level "warn" */
  logger?: Logger;
  /**
   * Extra Postgres settings (`name=value`, as `postgres -c`), e.g. `shared_preload_libraries=pg_stat_statements`
   * or more memory for a benchmark. They apply to this run only; the cluster on disk keeps none of them.
   */
  postgresSettings?: string[];
}

export interface LocalStack {
  name: string;
  dataDir: string;
  /** The migrated `docpipe` database. */
  databaseUrl: string;
  s3Endpoint: string;
  sqsEndpoint: string;
  /** The Secrets Manager stand-in (in memory: secrets last as long as the stack). */
  secretsManagerEndpoint: string;
  region: "us-east-1";
  credentials: { accessKeyId: string; secretAccessKey: string };
  workBucket: string;
  stagingBucket: string;
  queuePrefix: string;
  queueUrls: Record<QueueKey, QueueUrls>;
  /** Clients for this stack (path-style S3); closed by stop(). */
  s3: S3Client;
  sqs: SQSClient;
  secretsManager: SecretsManagerClient;
  /** On `databaseUrl`; disconnected by stop(). */
  prisma: PrismaClient;
  /** The environment a service needs to reach this stack; see {@link stackEnv}. */
  env: Record<string, string>;
  /**
   * A new, migrated database cloned from the template (CREATE DATABASE … TEMPLATE, a few ms):
   * one per test keeps tests apart. Returns its URL. @param name defaults to a unique name
   */
  createDatabase(name?: string): Promise<string>;
  /** Deletes every message of every queue and DLQ (the fixture does it between tests). */
  purgeQueues(): void;
  /** ReceiveMessage requests open right now: above 0 when idle means a worker was left running. */
  openReceiveRequests(): number;
  /** ReceiveMessage requests since the stack started. */
  receiveRequests(): number;
  /** Requests the S3 and SQS stand-ins answered since the stack started, by kind (`s3 GET object`, `sqs SendMessageBatch`). */
  standInRequests(): Record<string, number>;
  /** GetSecretValue calls answered for a secret (name or ARN) since the stack started. */
  secretReads(secretId: string): number;
  /** Stops everything, in order; idempotent. */
  stop(): Promise<void>;
}

/** The variables a service reads (packages/queue `commonEnv`) to use this stack. */
export function stackEnv(stack: Omit<LocalStack, "env">): Record<string, string> {
  return {
    DATABASE_URL: stack.databaseUrl,
    AWS_REGION: stack.region,
    AWS_ENDPOINT_URL_S3: stack.s3Endpoint,
    AWS_ENDPOINT_URL_SQS: stack.sqsEndpoint,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: stack.secretsManagerEndpoint,
    AWS_ACCESS_KEY_ID: stack.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: stack.credentials.secretAccessKey,
    S3_FORCE_PATH_STYLE: "true",
    QUEUE_PREFIX: stack.queuePrefix,
    WORK_BUCKET: stack.workBucket,
    STAGING_BUCKET: stack.stagingBucket,
  };
}

/** What a running stack records in its data directory, for `pnpm studio` and for cleanup. */
export interface StackState {
  pid: number;
  name: string;
  ephemeral: boolean;
  postgresPid?: number;
  /** Stops Postgres should this stack's process die without stopping it. */
  watchdogPid?: number;
  env?: Record<string, string>;
}

export async function readState(dataDir: string): Promise<StackState | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(dataDir, STATE_FILE), "utf8")) as StackState;
  } catch {
    return undefined;
  }
}

const silentWarnLogger = (): Logger => createLogger({ service: "local-stack", level: "warn" });

/**
 * Ephemeral stacks of processes that died without stopping them (a killed test worker):
 * their Postgres is stopped and their directory removed.
 */
async function sweepAbandoned(logger: Logger): Promise<void> {
  let entries: string[];
  try {
    entries = await fs.readdir(LOCAL_DIR);
  } catch {
    return;
  }
  await Promise.all(
    entries.map(async (entry) => {
      const dir = path.join(LOCAL_DIR, entry);
      const state = await readState(dir);
      if (!state?.ephemeral || isAlive(state.pid)) return;
      logger.info({ dir, pid: state.pid }, "removing an ephemeral stack left behind by a dead process");
      await stopOrphanPostmaster(path.join(dir, "postgres"), logger);
      await fs.rm(dir, { recursive: true, force: true });
    }),
  );
}

let unnamed = 0;

/** Starts Postgres, s3rver and the SQS and Secrets Manager stand-ins, creates buckets and queues, and connects the S3 → SQS bridge. */
export async function start(opts: LocalStackOptions = {}): Promise<LocalStack> {
  const started = Date.now();
  const logger = opts.logger ?? silentWarnLogger();
  const name = opts.name ?? `tmp-${process.pid}-${++unnamed}-${randomBytes(3).toString("hex")}`;
  const ephemeral = opts.ephemeral ?? opts.name === undefined;
  const dataDir = path.resolve(opts.dataDir ?? path.join(LOCAL_DIR, name));
  const workBucket = opts.workBucket ?? "docpipe-work";
  const stagingBucket = opts.stagingBucket ?? "docpipe-staging";
  const queuePrefix = opts.queuePrefix ?? "docpipe-";
  const region = "us-east-1" as const;
  const buckets = [...new Set([workBucket, stagingBucket, ...(opts.buckets ?? [])])];

  await sweepAbandoned(logger);
  const previous = await readState(dataDir);
  if (previous && previous.pid !== process.pid && isAlive(previous.pid)) {
    throw new LocalStackError(`the local stack "${name}" is already running (pid ${previous.pid}); stop it first or pick another name`);
  }
  await fs.mkdir(dataDir, { recursive: true });
  const writeState = (extra: Partial<StackState>) =>
    fs.writeFile(path.join(dataDir, STATE_FILE), JSON.stringify({ pid: process.pid, name, ephemeral, ...extra }, null, 2));
  await writeState({});

  const postgres = new PostgresCluster({
    dataDir: path.join(dataDir, "postgres"),
    port: opts.postgresPort ?? 0,
    fast: ephemeral,
    cacheDir: path.join(LOCAL_DIR, "cache"),
    migrationsDir: MIGRATIONS_DIR,
    logger,
    settings: opts.postgresSettings ?? [],
  });
  const s3Server = new S3Server({ directory: path.join(dataDir, "s3"), port: opts.s3Port ?? 0, buckets, logger });
  const sqsServer = new SqsServer({ port: opts.sqsPort ?? 0 });
  const credentials = { ...S3RVER_CREDENTIALS };
  let secretsServer: SecretsManagerServer | undefined;
  const clients: { s3?: S3Client; sqs?: SQSClient; secretsManager?: SecretsManagerClient; prisma?: PrismaClient } = {};

  let stopping: Promise<void> | undefined;
  const onExit = () => postgres.stopNow();
  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal }, "signal received; stopping the local stack");
    void stop().finally(() => {
      // Nobody else handles it: end the process the way the signal would have.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  };
  const signals: NodeJS.Signals[] = opts.handleSignals === false ? [] : ["SIGINT", "SIGTERM", "SIGHUP"];

  function stop(): Promise<void> {
    stopping ??= (async () => {
      for (const s of signals) process.off(s, onSignal);
      const errors: unknown[] = [];
      const attempt = async (what: string, fn: () => Promise<unknown> | unknown) => {
        try {
          await fn();
        } catch (e) {
          logger.error({ err: e }, `local stack: ${what} failed while stopping`);
          errors.push(e);
        }
      };
      await attempt("s3", () => s3Server.stop());
      await attempt("prisma", () => clients.prisma?.$disconnect());
      await attempt("sqs", () => sqsServer.stop());
      await attempt("secrets manager", () => secretsServer?.stop());
      await attempt("postgres", () => postgres.stop());
      clients.s3?.destroy();
      clients.sqs?.destroy();
      clients.secretsManager?.destroy();
      process.off("exit", onExit);
      await attempt("cleanup", () =>
        ephemeral ? fs.rm(dataDir, { recursive: true, force: true }) : fs.rm(path.join(dataDir, STATE_FILE), { force: true }),
      );
      logger.info({ name }, "local stack stopped");
      if (errors.length) throw new LocalStackError(`the local stack "${name}" did not stop cleanly`, { cause: errors[0] });
    })();
    return stopping;
  }

  process.on("exit", onExit);
  for (const s of signals) process.on(s, onSignal);
  try {
    await Promise.all([
      postgres.start(),
      s3Server.start(),
      sqsServer.start(),
      startSecretsManager({ accessKeyId: credentials.accessKeyId, region }).then((s) => {
        secretsServer = s;
      }),
    ]);
    clients.s3 = createS3Client({
      region,
      endpoint: s3Server.endpoint,
      forcePathStyle: true,
      credentials,
    });
    clients.sqs = new SQSClient({ region, endpoint: sqsServer.endpoint, credentials });
    const secretsManagerEndpoint = secretsServer!.endpoint;
    clients.secretsManager = new SecretsManagerClient({ region, endpoint: secretsManagerEndpoint, credentials });
    const queueUrls = await createQueues(clients.sqs, queuePrefix);
    s3Server.notify({ sqs: clients.sqs, queueUrl: queueUrls.convertedImage.url, bucket: workBucket, keyPattern: IMAGES_KEY_PATTERN, region });
    const databaseUrl = postgres.url(MAIN_DATABASE);
    clients.prisma = createPrisma({ databaseUrl, poolMax: 5 });

    let databases = 0;
    const base: Omit<LocalStack, "env"> = {
      name,
      dataDir,
      databaseUrl,
      s3Endpoint: s3Server.endpoint,
      sqsEndpoint: sqsServer.endpoint,
      secretsManagerEndpoint,
      region,
      credentials,
      workBucket,
      stagingBucket,
      queuePrefix,
      queueUrls,
      s3: clients.s3,
      sqs: clients.sqs,
      secretsManager: clients.secretsManager,
      prisma: clients.prisma,
      async createDatabase(dbName = `test_${++databases}_${randomBytes(4).toString("hex")}`) {
        if (!/^[a-z_][a-z0-9_]{0,62}$/.test(dbName)) {
          throw new LocalStackError(`database name "${dbName}" must be lower-case letters, digits and _`);
        }
        await postgres.cloneTemplate(dbName);
        return postgres.url(dbName);
      },
      purgeQueues: () => sqsServer.purgeAll(),
      openReceiveRequests: () => sqsServer.openReceives,
      receiveRequests: () => sqsServer.receives,
      standInRequests: () => ({
        ...Object.fromEntries(Object.entries(s3Server.requests).map(([k, n]) => [`s3 ${k}`, n])),
        ...Object.fromEntries(Object.entries(sqsServer.requests).map(([k, n]) => [`sqs ${k}`, n])),
      }),
      secretReads: (secretId) => secretsServer!.reads(secretId),
      stop,
    };
    const stack: LocalStack = { ...base, env: stackEnv(base) };
    await writeState({
      ...(postgres.pid !== undefined && { postgresPid: postgres.pid }),
      ...(postgres.watchdogPid !== undefined && { watchdogPid: postgres.watchdogPid }),
      env: stack.env,
    });
    logger.info({ name, ms: Date.now() - started, postgresPort: postgres.port, s3: stack.s3Endpoint, sqs: stack.sqsEndpoint }, "local stack started");
    return stack;
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}

/** Whether a stack of this name is running (in any process), and its environment. */
export async function findRunningStack(nameOrDataDir: string): Promise<StackState | undefined> {
  const dataDir = existsSync(nameOrDataDir) && path.isAbsolute(nameOrDataDir) ? nameOrDataDir : path.join(LOCAL_DIR, nameOrDataDir);
  const state = await readState(dataDir);
  return state?.env && isAlive(state.pid) ? state : undefined;
}
