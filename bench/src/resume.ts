// A killed `pnpm docpipe run` finished by `pnpm docpipe resume` (issue 11's closing figure).
// Starts `pnpm docpipe run <folder>` (default bench/corpus/e2e: 520 pages of mixed documents) in a
// process group of its own on a fresh local stack, SIGKILLs the whole group once RESUME_KILL_AT of
// the pages (default 0.4) are scored, then runs `pnpm docpipe resume` on the same stack and counts
// what the batch holds against the corpus's MANIFEST.tsv: documents, pages, PNGs, results, and
// renders or model calls beyond the retries the audit trail records.
//   pnpm bench:resume [folder]      (a folder with a MANIFEST.tsv as bench:e2e:corpus writes it)
//   RESUME_KILL_AT=0.7 pnpm bench:resume
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createWriteStream, readFileSync } from "node:fs";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { createPrisma, workAttempts } from "../../packages/db/src/index.ts";
import { findRunningStack, LOCAL_DIR, REPO_ROOT, start } from "../../packages/local-stack/src/index.ts";
import { OUT_DIR, table } from "./common.ts";

const FOLDER = resolve(process.env.INIT_CWD ?? process.cwd(), process.argv[2] ?? new URL("../corpus/e2e/", import.meta.url).pathname);
const KILL_AT = Number(process.env.RESUME_KILL_AT ?? 0.4);
const say = (line: string) => process.stderr.write(`${line}\n`);
const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** `pnpm docpipe <args>` as a person runs it, in a process group of its own (a terminal's job), output to a file. */
function docpipe(args: string[], log: string): ChildProcess {
  const child = spawn("pnpm", ["docpipe", ...args], { cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const out = createWriteStream(log);
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  return child;
}

/** PNGs under a prefix of the work bucket. */
async function pngCount(s3: S3Client, bucket: string, prefix: string): Promise<number> {
  let n = 0;
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    n += (page.Contents ?? []).filter((o) => o.Key?.endsWith(".png")).length;
    token = page.NextContinuationToken;
  } while (token);
  return n;
}

async function main(): Promise<void> {
  const dir = join(OUT_DIR, "resume");
  await mkdir(dir, { recursive: true });
  const folder = FOLDER;
  // The corpus's truth: one line per file, its page count second.
  const counts = (await readFile(join(folder, "MANIFEST.tsv"), "utf8")).trim().split("\n").slice(1).map((l) => Number(l.split("\t")[1]));
  const pages = counts.reduce((a, b) => a + b, 0);
  const name = `bench-resume-${randomBytes(3).toString("hex")}`;
  const runCommand = `pnpm docpipe run ${folder} --stack ${name}`;
  const resumeCommand = `pnpm docpipe resume --stack ${name} --report-json ${join(dir, "report.json")}`;
  say(`${counts.length} documents, ${pages} pages; ${runCommand}, SIGKILL of its process group at ${(KILL_AT * 100).toFixed(0)}% scored`);

  const loadStart = loadavg();
  const started = Date.now();
  const run = docpipe(["run", folder, "--stack", name], join(dir, "run.log"));
  let state: Awaited<ReturnType<typeof findRunningStack>>;
  while (!(state = await findRunningStack(name))) await sleep(500);
  const watch = createPrisma({ databaseUrl: state.env!.DATABASE_URL!, poolMax: 1 });
  let scored: number;
  while ((scored = await watch.page.count({ where: { state: "done" } }).catch(() => 0)) < KILL_AT * pages) {
    if (run.exitCode !== null) throw new Error(`docpipe run ended (${run.exitCode}) before it was killed: see ${join(dir, "run.log")}`);
    await sleep(200);
  }
  await watch.$disconnect();
  process.kill(-run.pid!, "SIGKILL");
  await once(run, "exit");
  const killedAfter = Date.now() - started;
  const loadKill = loadavg();
  say(`killed after ${seconds(killedAfter)}, ${scored} of ${pages} pages scored; ${resumeCommand}`);

  const resumedAt = Date.now();
  const resume = docpipe(["resume", "--stack", name, "--report-json", join(dir, "report.json")], join(dir, "resume.log"));
  const [code] = (await once(resume, "exit")) as [number | null];
  const resumeMs = Date.now() - resumedAt;
  const loadEnd = loadavg();
  if (code !== 0) throw new Error(`docpipe resume exited ${code}: see ${join(dir, "resume.log")}`);
  const report = JSON.parse(await readFile(join(dir, "report.json"), "utf8")) as { perDocument?: unknown[] };

  const stack = await start({ name, ephemeral: false });
  try {
    const { prisma } = stack;
    const batch = await prisma.batch.findFirstOrThrow({ select: { id: true, state: true } });
    const docs = await prisma.document.groupBy({ by: ["state"], where: { batchId: batch.id }, _count: true });
    const pageRows = await prisma.page.groupBy({ by: ["state"], where: { document: { batchId: batch.id } }, _count: true });
    const results = await prisma.inferenceResult.count({ where: { document: { batchId: batch.id } } });
    const pngs = await pngCount(stack.s3, stack.workBucket, `batches/${batch.id}/`);
    const work = await workAttempts(prisma, batch.id);
    const reconciled = await prisma.auditEvent.count({ where: { batchId: batch.id, outcome: "reconciled" } });
    const retried = await prisma.auditEvent.count({ where: { batchId: batch.id, stage: "convert", outcome: "started", attempt: { gt: 1 } } });
    const byState = (rows: { state: string; _count: number }[]) => rows.map((r) => `${r._count} ${r.state}`).join(", ");
    table([
      ["measure", "figure"],
      ["run (killed)", runCommand],
      ["resume", resumeCommand],
      ["corpus", `${counts.length} documents, ${pages} pages`],
      ["killed after", `${seconds(killedAfter)}, ${scored} pages scored (load ${loadStart} at start, ${loadKill} at kill)`],
      ["resume took", `${seconds(resumeMs)}, exit ${code} (load ${loadEnd} at end)`],
      ["batch", `${batch.state}; report perDocument ${report.perDocument?.length ?? 0}`],
      ["documents", byState(docs)],
      ["pages", byState(pageRows)],
      ["PNGs", `${pngs} (one per page: ${pngs === pages ? "yes" : "NO"})`],
      ["results", `${results} (one per page: ${results === pages ? "yes" : "NO"})`],
      ["renders / model calls recorded", `${work.convert} / ${work.inference} (${work.convert - pages} / ${work.inference - pages} beyond one per page)`],
      ["of which retries the trail records", `${retried} convert redeliveries; ${reconciled} units re-sent (reconciled)`],
      ["duplicated beyond recorded retries", `${work.unexplained.length}`],
    ]);
    if (work.unexplained.length > 0 || pngs !== pages || results !== pages || batch.state !== "completed") process.exitCode = 1;
  } finally {
    await stack.stop();
    await rm(join(LOCAL_DIR, name), { recursive: true, force: true });
  }
}

await main();
