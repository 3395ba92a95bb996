// `docpipe run` as a person runs it: the CLI in a process of its own, started the way the root
// package.json's `docpipe` script starts it (so with the same Node flags), on the folder. Its
// batch is timed from the batch's creation to its completion as the database recorded them, and
// charged the CPU its threads and the embedded Postgres used in between, read from /proc.
import { spawn } from "node:child_process";
import { copyFile, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { LOCAL_DIR, start as startStack } from "../../../packages/local-stack/src/index.ts";
import { docpipeNodeArgs } from "../../../tests/fixtures/docpipe-command.ts";
import { batchCounts, type BatchRun } from "./batch.ts";
import { processCpuSeconds, threadCpuSeconds, treeCpuSeconds } from "./proc.ts";

const REPO = new URL("../../../", import.meta.url).pathname;
const LABEL = "bench-e2e";
const SAMPLE_MS = 100;
/** BENCH_E2E_RUN_NODE_FLAGS="--a --b": Node flags added after the CLI's own, to measure one (or turn one off: --no-...). */
const EXTRA_FLAGS = (process.env.BENCH_E2E_RUN_NODE_FLAGS ?? "").split(" ").filter(Boolean);

interface Sample {
  at: number;
  threads: Map<number, { name: string; seconds: number }>;
  node: number;
  postgres: number;
}

/** What each thread had used by the last sample at or before `at`, threads that ended before it included. */
function threadsAt(samples: Sample[], at: number, pid: number): Map<number, { name: string; seconds: number }> {
  const out = new Map<number, { name: string; seconds: number }>();
  for (const s of samples) {
    if (s.at > at) break;
    for (const [tid, t] of s.threads) out.set(tid, { name: tid === pid ? "MainThread" : t.name, seconds: t.seconds });
  }
  return out;
}

function lastAt(samples: Sample[], at: number): Sample {
  let last = samples[0]!;
  for (const s of samples) {
    if (s.at > at) break;
    last = s;
  }
  return last;
}

export async function runCli(folder: string, opts: { dpi: number; logFile: string; timeoutMs: number }): Promise<BatchRun & { command: string }> {
  const stackName = `bench-e2e-${process.pid}`;
  const dataDir = join(LOCAL_DIR, stackName);
  await rm(dataDir, { recursive: true, force: true });
  const exe = process.execPath;
  const nodeArgs = docpipeNodeArgs();
  // After the script's own flags, so that one can be turned off (--no-single-threaded-gc).
  const entry = nodeArgs.findIndex((a) => a.endsWith(".ts"));
  const args = [...nodeArgs.slice(0, entry), ...EXTRA_FLAGS, ...nodeArgs.slice(entry), "run", folder, "--stack", stackName, "--label", LABEL, "--dpi", String(opts.dpi)];
  const command = [exe, ...args].join(" ");
  const child = spawn(exe, args, { cwd: REPO, stdio: ["ignore", "ignore", "pipe"] });
  const pid = child.pid!;
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const kill = () => child.kill("SIGKILL");
  process.once("exit", kill);
  const samples: Sample[] = [];
  const sample = () => {
    const node = processCpuSeconds(pid);
    if (node === undefined) return;
    samples.push({ at: Date.now(), threads: threadCpuSeconds(pid), node, postgres: treeCpuSeconds(pid, { match: /^postgres$/ }) });
  };
  const timer = setInterval(sample, SAMPLE_MS);
  const deadline = setTimeout(kill, opts.timeoutMs);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (c) => resolve(c));
    });
    if (code !== 0) throw new Error(`${command} exited with ${code}: ${stderr.trim()}`);
  } finally {
    clearInterval(timer);
    clearTimeout(deadline);
    process.off("exit", kill);
  }

  // The CLI stopped its stack; start it again to read what the run recorded.
  const stack = await startStack({ name: stackName, ephemeral: false, handleSignals: true });
  try {
    const batch = await stack.prisma.batch.findFirstOrThrow({ where: { label: LABEL }, select: { id: true, createdAt: true, completedAt: true } });
    if (!batch.completedAt) throw new Error(`batch ${batch.id} did not complete`);
    const from = batch.createdAt.getTime();
    const to = batch.completedAt.getTime();
    const before = threadsAt(samples, from, pid);
    const threads: Record<string, number> = {};
    for (const [tid, t] of threadsAt(samples, to, pid)) threads[t.name] = (threads[t.name] ?? 0) + t.seconds - (before.get(tid)?.seconds ?? 0);
    const [s0, s1] = [lastAt(samples, from), lastAt(samples, to)];
    const logs = join(dataDir, "logs");
    const log = (await readdir(logs)).filter((f) => f.startsWith("run-")).sort().at(-1);
    if (log) await copyFile(join(logs, log), opts.logFile);
    return {
      command,
      batchId: batch.id,
      ...(await batchCounts(stack, batch.id)),
      wallSeconds: (to - from) / 1000,
      nodeCpuSeconds: s1.node - s0.node,
      mainThreadCpuSeconds: threads.MainThread ?? 0,
      postgresCpuSeconds: s1.postgres - s0.postgres,
      threads,
    };
  } finally {
    await stack.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}
