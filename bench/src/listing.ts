// Listing: how long POST /batches takes to fully enqueue 100,000 objects on the local stack, from
// the request until every Document row is inserted and every ingest message is on the queue, and
// whose CPU that was. The ingestion service runs as its image runs it (services/ingestion's
// main.ts in a child process), so its CPU is read from /proc on its own, apart from the stand-ins:
// s3rver and the SQS stand-in (this process) and Postgres (its processes).
//   pnpm bench:listing
//   BENCH_LISTING_N=100000 BENCH_LISTING_RUNS=1 BENCH_LISTING_PROFILE=1 BENCH_LISTING_REFERENCE=0 pnpm bench:listing
// The objects are uploaded once into the named stack `bench-listing` (.local/bench-listing, kept
// between runs; delete it to upload again); uploading is not timed. Each run gets a fresh
// database cloned from the migrated template and an empty queue. Postgres runs without fsync, as
// in the tests. BENCH_LISTING_PROFILE=1 writes the service's CPU profile (node --cpu-prof) to
// bench/out/listing-profile/.
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import pg from "pg";
import { createApiKey } from "../../packages/api-keys/src/index.ts";
import { createPrisma } from "../../packages/db/src/index.ts";
import { freePort, start, type LocalStack } from "../../packages/local-stack/src/index.ts";
import { createLogger } from "../../packages/queue/src/index.ts";
import { OUT_DIR, table } from "./common.ts";
import { loadAverage, peakRssBytes, treeCpuSeconds } from "./e2e/proc.ts";

const N = Number(process.env.BENCH_LISTING_N ?? 100_000);
const RUNS = Number(process.env.BENCH_LISTING_RUNS ?? 1);
const PROFILE = process.env.BENCH_LISTING_PROFILE === "1";
const GOAL_SECONDS = 30;
/** Keys per prefix: s3rver reads a prefix's whole directory for every page, so one huge directory would measure s3rver. */
const PER_PREFIX = 1_000;
const BUCKET = "bench-inbox";
const repo = new URL("../../", import.meta.url).pathname;
const logDir = join(OUT_DIR, "listing");
const profileDir = join(OUT_DIR, "listing-profile");

/** Postgres: the postmaster (this process's child) and its backends, the exited ones included. */
const postgresCpu = () => treeCpuSeconds(process.pid, { match: /^postgres$/ });
const pidCpu = (pid: number) => treeCpuSeconds(pid);
const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

const prefixes = Array.from({ length: Math.ceil(N / PER_PREFIX) }, (_, i) => `bench/${String(i).padStart(4, "0")}/`);

/** Puts the objects once; a marker in the stack's directory says they are there. */
async function uploadOnce(stack: LocalStack): Promise<string> {
  // The keys are the same for every N: a run of N objects can use what a larger run uploaded.
  const marker = join(stack.dataDir, "listing-objects.json");
  const uploaded = existsSync(marker) ? (JSON.parse(await readFile(marker, "utf8")) as { objects: number; perPrefix: number }) : undefined;
  if (uploaded && uploaded.objects >= N && uploaded.perPrefix === PER_PREFIX) return "cached";
  const { PutObjectCommand } = await import("@aws-sdk/client-s3");
  const t = performance.now();
  const keys = prefixes.flatMap((p, i) =>
    Array.from({ length: Math.min(PER_PREFIX, N - i * PER_PREFIX) }, (_, j) => `${p}doc-${String(j).padStart(6, "0")}.pdf`),
  );
  let next = 0;
  let done = 0;
  const lane = async () => {
    while (next < keys.length) {
      const key = keys[next++]!;
      await stack.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: `%PDF-1.4 ${key}` }));
      if (++done % 10_000 === 0) console.log(`  uploaded ${done} of ${keys.length}`);
    }
  };
  await Promise.all(Array.from({ length: 32 }, lane));
  await writeFile(marker, JSON.stringify({ objects: N, perPrefix: PER_PREFIX }));
  return `uploaded in ${((performance.now() - t) / 1000).toFixed(0)} s`;
}

/** The ingestion service as its image runs it, on a database of its own. */
async function startIngestion(stack: LocalStack, databaseUrl: string, run: number): Promise<{ child: ChildProcess; url: string; listedMs: () => number | undefined }> {
  const port = await freePort();
  const args = ["--conditions=@docpipe/source", "--import", "tsx"];
  if (PROFILE) args.push("--cpu-prof", `--cpu-prof-dir=${profileDir}`);
  const child = spawn(process.execPath, [...args, join(repo, "services/ingestion/src/main.ts")], {
    cwd: repo,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...stack.env, DATABASE_URL: databaseUrl, PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log = createWriteStream(join(logDir, `ingestion-${run}.log`));
  child.stderr!.pipe(log);
  let listedMs: number | undefined;
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`ingestion exited with ${code} before listening (log: ${join(logDir, `ingestion-${run}.log`)})`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      log.write(`${line}\n`);
      if (line.includes("Server listening at")) resolve();
      // The lister's own figure: from the end of the count to the last page's position.
      if (line.includes('"msg":"listing finished"')) listedMs = (JSON.parse(line) as { ms?: number }).ms;
    });
  });
  return { child, url: `http://127.0.0.1:${port}`, listedMs: () => listedMs };
}

const stopChild = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });

interface Run {
  wallSeconds: number;
  acceptedMs: number;
  documents: number;
  messages: number;
  /** Of `wallSeconds`, the pages' rows, messages and positions after the count (the lister's "listing finished" ms). */
  writeSeconds: number;
  /** The ingestion process's peak RSS (VmHWM), start-up included. */
  peakRss: number;
  ingestionCpu: number;
  postgresCpu: number;
  standInCpu: number;
  loadBefore: string;
  loadAfter: string;
}

async function queuedMessages(stack: LocalStack): Promise<number> {
  const q = await stack.sqs.send(new GetQueueAttributesCommand({ QueueUrl: stack.queueUrls.ingest.url, AttributeNames: ["ApproximateNumberOfMessages"] }));
  return Number(q.Attributes?.ApproximateNumberOfMessages ?? 0);
}

async function measure(stack: LocalStack, run: number): Promise<Run> {
  const dbName = `bench_listing_${process.pid}_${run}`;
  const databaseUrl = await stack.createDatabase(dbName);
  const prisma = createPrisma({ databaseUrl, poolMax: 2 });
  // Nothing consumes the ingest queue: a run's messages are what it added. (No PurgeQueue: as on SQS, messages sent while a purge is in progress may be deleted.)
  const messagesBefore = await queuedMessages(stack);
  const { key } = await createApiKey(prisma, { name: "bench", owner: "bench", plan: "local", buckets: ["*"] });
  const { child, url, listedMs } = await startIngestion(stack, databaseUrl, run);
  try {
    await new Promise((r) => setTimeout(r, 1000)); // let start-up work (resumeAll, stall watcher) settle
    const loadBefore = loadAverage();
    const cpu0 = { ingestion: pidCpu(child.pid!), postgres: postgresCpu(), self: selfCpu() };
    const t0 = performance.now();
    const res = await fetch(`${url}/batches`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": key },
      body: JSON.stringify({ bucket: BUCKET, prefixes }),
    });
    const acceptedMs = performance.now() - t0;
    const body = (await res.json()) as { batchId?: string };
    if (res.status !== 202 || !body.batchId) throw new Error(`POST /batches answered ${res.status}: ${JSON.stringify(body)}`);
    // Listed means every row inserted and every message sent: the batch leaves `listing` after its last page's messages.
    let batch: { state: string; documentCount: number } | null = null;
    for (;;) {
      batch = await prisma.batch.findUnique({ where: { id: body.batchId }, select: { state: true, documentCount: true } });
      if (batch && batch.state !== "listing") break;
      if (child.exitCode !== null) throw new Error("the ingestion service exited while listing");
      await new Promise((r) => setTimeout(r, 50));
    }
    const wallSeconds = (performance.now() - t0) / 1000;
    const cpu1 = { ingestion: pidCpu(child.pid!), postgres: postgresCpu(), self: selfCpu() };
    const loadAfter = loadAverage();
    const messages = (await queuedMessages(stack)) - messagesBefore;
    await new Promise((r) => setTimeout(r, 200)); // the "listing finished" line follows the state change
    const peakRss = peakRssBytes(child.pid!);
    return {
      wallSeconds,
      acceptedMs,
      documents: batch.documentCount,
      messages,
      peakRss,
      writeSeconds: (listedMs() ?? NaN) / 1000,
      ingestionCpu: cpu1.ingestion - cpu0.ingestion,
      postgresCpu: cpu1.postgres - cpu0.postgres,
      standInCpu: cpu1.self - cpu0.self,
      loadBefore,
      loadAfter,
    };
  } finally {
    await stopChild(child);
    await prisma.$disconnect();
    const admin = new pg.Client({ connectionString: stack.databaseUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  }
}

/** The floor s3rver sets: every page listed, one after another, by this process, nothing else done. */
async function bareListing(stack: LocalStack): Promise<{ seconds: number; cpu: number; keys: number; pages: number }> {
  const cpu0 = selfCpu();
  const t0 = performance.now();
  let keys = 0;
  let pages = 0;
  for (const prefix of prefixes) {
    let token: string | undefined;
    do {
      const out = await stack.s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, MaxKeys: 1000, ContinuationToken: token }));
      keys += out.KeyCount ?? 0;
      pages++;
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }
  return { seconds: (performance.now() - t0) / 1000, cpu: selfCpu() - cpu0, keys, pages };
}

async function main(): Promise<void> {
  await mkdir(logDir, { recursive: true });
  const logger = createLogger({ service: "bench-listing", level: "warn" });
  console.log(`load average before start: ${loadAverage()}; ${availableParallelism()} cores; node ${process.version}`);
  const stack = await start({
    name: "bench-listing",
    ephemeral: false,
    buckets: [BUCKET],
    logger,
    postgresSettings: ["fsync=off", "synchronous_commit=off", "full_page_writes=off"],
  });
  try {
    console.log(`${N} objects in ${prefixes.length} prefixes of ${PER_PREFIX}: ${await uploadOnce(stack)}`);
    const floor = process.env.BENCH_LISTING_REFERENCE === "0" ? undefined : await bareListing(stack);
    const runs: Run[] = [];
    for (let i = 1; i <= RUNS; i++) runs.push(await measure(stack, i));

    if (floor) {
      console.log(`\nreference: ListObjectsV2 of every page by this process alone (s3rver's floor): ${floor.pages} pages, ${floor.keys} keys, ` +
        `${floor.seconds.toFixed(1)} s, ${floor.cpu.toFixed(1)} CPU-s in this process\n`);
    }
    const rows: (string | number)[][] = [[
      "run", "objects", "documents", "messages", "accepted ms", "enqueued s", "of which count s", "objects/s", "vs 30 s goal",
      "ingestion CPU-s", "Postgres CPU-s", "s3rver+SQS CPU-s", "ingestion share", "ingestion CPU-ms/1000", "ingestion peak RSS", "load avg before", "load avg after",
    ]];
    runs.forEach((r, i) => {
      const total = r.ingestionCpu + r.postgresCpu + r.standInCpu;
      rows.push([
        i + 1, N, r.documents, r.messages, r.acceptedMs.toFixed(0), r.wallSeconds.toFixed(1), (r.wallSeconds - r.writeSeconds).toFixed(1), (N / r.wallSeconds).toFixed(0),
        `${(r.wallSeconds / GOAL_SECONDS).toFixed(2)}× (${r.wallSeconds <= GOAL_SECONDS ? "met" : "not met"})`,
        r.ingestionCpu.toFixed(1), r.postgresCpu.toFixed(1), r.standInCpu.toFixed(1), `${((100 * r.ingestionCpu) / total).toFixed(0)}%`,
        ((1000 * 1000 * r.ingestionCpu) / N).toFixed(0), `${(r.peakRss / 2 ** 20).toFixed(0)} MiB`, r.loadBefore, r.loadAfter,
      ]);
    });
    table(rows);
    console.log(
      "\nenqueued s: POST /batches until the batch left `listing` (every row inserted, every message sent). " +
        "s3rver+SQS CPU-s is this process (the two stand-ins and this script's polling); Postgres is its processes; " +
        `the ingestion service is its own process. vs 30 s goal: enqueued s / 30 (≤ 1.00 meets it). Logs: ${logDir}` +
        (PROFILE ? `; profiles: ${profileDir}` : ""),
    );
    if (runs.some((r) => r.documents !== N || r.messages !== N)) {
      console.error(`not every object became one document and one message (expected ${N} of each)`);
      process.exitCode = 1;
    }
  } finally {
    await stack.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
