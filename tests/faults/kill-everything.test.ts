// The whole local stack killed mid-batch: `docpipe run` (every service, the S3 and SQS stand-ins,
// and the process that owns Postgres) SIGKILLed as a process group, as a laptop's crash or an OOM
// kill does it. The queues die with it; the database and the objects do not. `docpipe resume`
// on the same stack must then finish the batch exactly as an uninterrupted run would have.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPrisma } from "@docpipe/db";
import { LOCAL_DIR, REPO_ROOT, findRunningStack, start } from "@docpipe/local-stack";
import { describe, expect, onTestFinished, test } from "vitest";
import type { BatchReport } from "@docpipe/cli";
import { waitFor } from "../fixtures/wait.js";
import { chaosSeeds, expectBatchMatchesTruth, expectNoUnexplainedWork, planCorpus, seededRandom, totalPages, writeCorpus } from "./support/scenario.js";
import { docpipeNodeArgs } from "../fixtures/docpipe-command.js";


/** `docpipe <args>` as a person runs it, in a process group of its own (a terminal's job). */
function docpipe(args: string[], logFile: string): ChildProcess & { output: () => string } {
  let output = "";
  const child = spawn(process.execPath, [...docpipeNodeArgs(), ...args], {
    cwd: REPO_ROOT,
    detached: true,
    env: { ...process.env, LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  for (const s of [child.stdout!, child.stderr!]) s.on("data", (c: Buffer) => (output += c.toString("utf8")));
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, "SIGKILL");
    await rm(logFile, { force: true });
  });
  return Object.assign(child, { output: () => output });
}

describe("the whole local stack killed mid-batch", () => {
  for (const seed of chaosSeeds(31)) {
    test(`docpipe resume finishes what the killed docpipe run left, nothing lost, nothing doubled (seed ${seed})`, { timeout: 8 * 60_000 }, async () => {
      const say = (msg: string) => process.stdout.write(`[kill-everything seed ${seed}] ${msg}\n`);
      const random = seededRandom(seed);
      const name = `kill-${seed}-${randomBytes(3).toString("hex")}`;
      const dir = await mkdtemp(join(tmpdir(), "docpipe-kill-"));
      onTestFinished(async () => {
        await rm(dir, { recursive: true, force: true });
        await rm(join(LOCAL_DIR, name), { recursive: true, force: true });
      });
      const folder = join(dir, "pdfs");
      const plan = planCorpus(random, { singles: 6, small: 8, large: 4, minPages: 150 });
      const relative = await writeCorpus(folder, plan);
      const pages = totalPages(relative);
      // Killed when this share of the pages is scored.
      const at = 0.2 + random() * 0.5;
      say(`${relative.length} documents, ${pages} pages; killing everything at ${(at * 100).toFixed(0)}% scored`);

      const started = Date.now();
      const run = docpipe(["run", folder, "--stack", name, "--dpi", "50"], join(dir, "run.log"));
      const state = await waitFor("the run's stack to start", async () => findRunningStack(name), 120_000);
      const prisma = createPrisma({ databaseUrl: state.env!.DATABASE_URL!, poolMax: 2 });
      const scored = () => prisma.page.count({ where: { state: "done" } }).catch(() => 0);
      await waitFor(`${(at * 100).toFixed(0)}% of the pages scored`, async () => ((await scored()) >= at * pages ? true : undefined), 180_000);
      const before = await scored();
      await prisma.$disconnect();
      process.kill(-run.pid!, "SIGKILL");
      await once(run, "exit");
      say(`killed after ${((Date.now() - started) / 1000).toFixed(1)} s with ${before} of ${pages} pages scored`);
      // Postgres outlived the group kill in its own session: its watchdog stops it, or resume's start does.

      const resumedAt = Date.now();
      const reportFile = join(dir, "report.json");
      const resume = docpipe(["resume", "--stack", name, "--report-json", reportFile], join(dir, "resume.log"));
      const [code] = (await once(resume, "exit")) as [number | null];
      say(`resumed in ${((Date.now() - resumedAt) / 1000).toFixed(1)} s:\n${resume.output().split("\n").filter((l) => /re-sent|resuming|resumed|documents /.test(l)).join("\n")}`);
      expect(code, resume.output()).toBe(0);
      expect(resume.output()).toMatch(/re-sent what the crash left behind: (?!nothing)/);

      const report = JSON.parse(await readFile(reportFile, "utf8")) as BatchReport;
      expect(report.perDocument?.map((d) => (d as { sourcePath?: string }).sourcePath).sort()).toEqual(relative.map((t) => join(folder, t.key)).sort());

      const stack = await start({ name, ephemeral: false });
      try {
        const batch = await stack.prisma.batch.findFirstOrThrow({ select: { id: true, prefixes: true } });
        const truth = relative.map((t) => ({ ...t, key: batch.prefixes[0] + t.key }));
        await expectBatchMatchesTruth(stack, stack.prisma, batch.id, truth, report);
        // What the kill interrupted was rendered or scored again, each time on a re-sent message the trail shows.
        await expectNoUnexplainedWork(stack.prisma, batch.id);
        const reconciled = await stack.prisma.auditEvent.findMany({ where: { batchId: batch.id, outcome: "reconciled" }, select: { stage: true, createdAt: true } });
        const when = (at: Date) => (at.getTime() < resumedAt ? "by the killed run" : "by resume");
        const counts = new Map<string, number>();
        for (const r of reconciled) counts.set(`${r.stage} ${when(r.createdAt)}`, (counts.get(`${r.stage} ${when(r.createdAt)}`) ?? 0) + 1);
        say(`units reconciled: ${[...counts].map(([k, n]) => `${n} ${k}`).join(", ")}`);
        expect(reconciled.filter((r) => when(r.createdAt) === "by resume").length).toBeGreaterThan(0);
      } finally {
        await stack.stop();
      }
    });
  }
});
