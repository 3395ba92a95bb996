// Throughput of the reference model at a realistic page: PNGs of real pages rendered at 150 dpi
// (the page converter's default), served by the model as its image runs it (main.ts in a child
// process: one process, then one per core), read from the local stack's S3 and driven over
// loopback for a fixed time. The figure that matters is invocations per CPU-second of the model
// processes: what one vCPU serves whatever else runs on the machine. infra/lib/model-capacity.ts
// records it (REFERENCE_REQUESTS_PER_SECOND_PER_VCPU) and derives the usage plan from it.
//   pnpm bench:model
//   BENCH_MODEL_SECONDS=20 BENCH_MODEL_DPI=150 pnpm bench:model
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { limitsFromCapacity, REFERENCE_REQUESTS_PER_SECOND_PER_VCPU, instanceVcpus } from "../../infra/lib/model-capacity.ts";
import { freePort, start } from "../../packages/local-stack/src/index.ts";
import { inspectPdf, renderPage } from "../../packages/pdf/src/index.ts";
import { createLogger, uploadFile } from "../../packages/queue/src/index.ts";
import { OUT_DIR, table } from "./common.ts";

const SECONDS = Number(process.env.BENCH_MODEL_SECONDS ?? 20);
const DPI = Number(process.env.BENCH_MODEL_DPI ?? 150);
const cores = availableParallelism();
const repo = new URL("../../", import.meta.url).pathname;
const samples = join(repo, "samples");
const modelMain = join(repo, "packages/reference-model/src/main.ts");
const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");

/** User + system CPU seconds of a process and its live children (cluster workers), from /proc. */
function cpuSeconds(pid: number): number {
  const ticks = 100; // USER_HZ on Linux
  const stat = (p: number) => {
    const fields = readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]!.split(" ");
    // utime and stime are fields 14 and 15 (1-based); after "pid (comm) " they are at 11 and 12.
    return { ppid: Number(fields[1]), cpu: (Number(fields[11]) + Number(fields[12])) / ticks };
  };
  let total = stat(pid).cpu;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const s = stat(Number(entry));
      if (s.ppid === pid) total += s.cpu;
    } catch {
      // the process ended while we looked
    }
  }
  return total;
}

async function startModel(workers: number, env: Record<string, string>): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, ["--conditions=@docpipe/source", "--import", "tsx", modelMain, "serve"], {
    env: { ...process.env, ...env, PORT: String(port), HOST: "127.0.0.1", MODEL_WORKERS: String(workers), LOG_LEVEL: "warn" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let t = Date.now(); !(await fetch(`${url}/ping`).then((r) => r.ok, () => false)); ) {
    if (child.exitCode !== null || Date.now() - t > 60_000) throw new Error("the model did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  const stop = () =>
    new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
  return { url, child, stop };
}

interface Run {
  workers: number;
  concurrency: number;
  ok: number;
  errors: number;
  wallSeconds: number;
  cpuSeconds: number;
  latencies: number[];
  loadBefore: string;
  loadAfter: string;
}

/** Keeps `concurrency` invocations in flight for `seconds`, cycling through the pages. */
async function drive(url: string, pid: number, bucket: string, keys: string[], workers: number, concurrency: number): Promise<Run> {
  const call = async (key: string) => {
    const t = performance.now();
    const res = await fetch(`${url}/invocations`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ bucket, key }) });
    await res.arrayBuffer();
    return { ok: res.ok, ms: performance.now() - t };
  };
  // Warm-up: mupdf's WASM and the S3 client's connections, in every worker.
  for (let i = 0; i < 4 * workers; i++) await Promise.all(Array.from({ length: concurrency }, (_, j) => call(keys[(i + j) % keys.length]!)));
  const loadBefore = load();
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  const run: Run = { workers, concurrency, ok: 0, errors: 0, wallSeconds: 0, cpuSeconds: 0, latencies: [], loadBefore, loadAfter: "" };
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const r = await call(keys[next++ % keys.length]!);
        if (r.ok) run.ok += 1;
        else run.errors += 1;
        run.latencies.push(r.ms);
      }
    }),
  );
  run.wallSeconds = (performance.now() - t0) / 1000;
  run.cpuSeconds = cpuSeconds(pid) - cpu0;
  run.loadAfter = load();
  return run;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function main(): Promise<void> {
  const logger = createLogger({ service: "bench-model", level: "warn" });
  const stack = await start({ name: "bench-model", ephemeral: true, logger });
  const stops: (() => Promise<void>)[] = [];
  try {
    // Real pages: the bundled samples' Letter pages, rendered as the page converter renders them.
    const keys: string[] = [];
    const sizes: { w: number; h: number; bytes: number }[] = [];
    const pngDir = join(OUT_DIR, "model-pages");
    await mkdir(pngDir, { recursive: true });
    for (const file of ["twelve-letter.pdf", "mixed.pdf"]) {
      const path = join(samples, file);
      const { pageCount } = await inspectPdf(path);
      for (let i = 0; i < pageCount; i++) {
        const r = await renderPage(path, i, { dpi: DPI });
        const key = `bench/${file}/${i + 1}.png`;
        const png = join(pngDir, `${file}-${i + 1}.png`);
        await writeFile(png, r.png);
        await uploadFile(stack.s3, stack.workBucket, key, png, "image/png");
        keys.push(key);
        sizes.push({ w: r.width, h: r.height, bytes: r.png.byteLength });
      }
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(
      `${keys.length} pages at ${DPI} dpi: mean ${Math.round(mean(sizes.map((s) => s.w)))}×${Math.round(mean(sizes.map((s) => s.h)))} px, ` +
        `${(mean(sizes.map((s) => s.bytes)) / 1024).toFixed(0)} KiB PNG; ${cores} cores; ${SECONDS} s per run; load average ${load()}`,
    );

    const { AWS_REGION, AWS_ENDPOINT_URL_S3, S3_FORCE_PATH_STYLE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY } = stack.env as Record<string, string>;
    const s3Env = { AWS_REGION, AWS_ENDPOINT_URL_S3, S3_FORCE_PATH_STYLE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY } as Record<string, string>;
    const runs: Run[] = [];
    for (const workers of [...new Set([1, cores])]) {
      const model = await startModel(workers, s3Env);
      stops.push(model.stop);
      // Two calls in flight per process: one computing while the other waits for S3.
      runs.push(await drive(model.url, model.child.pid!, stack.workBucket, keys, workers, 2 * workers));
      await model.stop();
      stops.pop();
    }

    table([
      ["model processes", "in flight", "ok", "errors", "wall s", "req/s", "model CPU-s", "req per CPU-s (per vCPU)", "p50 ms", "p99 ms", "load avg before", "load avg after"],
      ...runs.map((r) => {
        const sorted = [...r.latencies].sort((a, b) => a - b);
        return [
          r.workers,
          r.concurrency,
          r.ok,
          r.errors,
          r.wallSeconds.toFixed(1),
          (r.ok / r.wallSeconds).toFixed(1),
          r.cpuSeconds.toFixed(1),
          (r.ok / r.cpuSeconds).toFixed(1),
          pct(sorted, 50).toFixed(0),
          pct(sorted, 99).toFixed(0),
          r.loadBefore,
          r.loadAfter,
        ];
      }),
    ]);

    const measured = Math.min(...runs.map((r) => r.ok / r.cpuSeconds));
    const recorded = REFERENCE_REQUESTS_PER_SECOND_PER_VCPU;
    console.log(
      `\nmeasured: ${measured.toFixed(1)} invocations per vCPU-second (the lower of the runs); ` +
        `recorded in infra/lib/model-capacity.ts: ${recorded}`,
    );
    const fleet = { vcpusPerInstance: instanceVcpus["ml.c5.large"]!, minInstances: 1, maxInstances: 4 };
    const limits = (perVcpu: number) => limitsFromCapacity({ requestsPerSecondPerVcpu: perVcpu, ...fleet });
    const row = (name: string, perVcpu: number) => {
      const l = limits(perVcpu);
      return [name, perVcpu.toFixed(1), l.perInstancePerSecond.toFixed(1), l.rateLimit, l.burstLimit, l.quotaPerDay, l.invocationsPerInstancePerMinute];
    };
    console.log("\nwhat each figure gives the default fleet (ml.c5.large, 2 vCPU, 1 to 4 instances):");
    table([
      ["figure", "req/s per vCPU", "req/s per instance", "plan rate/s", "plan burst", "quota/day", "target invocations/instance/min"],
      row("recorded", recorded),
      row("this run", measured),
    ]);
  } finally {
    for (const stop of stops) await stop();
    await stack.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
