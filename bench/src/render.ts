// Render throughput at 150 dpi: RenderPool and single-thread renderPage against `mutool draw`
// on the same pages, in one run. Goal: the pool renders ≥ 0.7 × mutool's pages/s per core.
//   pnpm bench:render              # BENCH_RENDER_ROUNDS=2 BENCH_DPI=150 to change
import { execFile } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { generateCorpus, renderPage, RenderPool } from "../../packages/pdf/src/index.ts";
import { OUT_DIR, largePdf, table } from "./common.ts";

const DPI = Number(process.env.BENCH_DPI ?? 150);
const ROUNDS = Number(process.env.BENCH_RENDER_ROUNDS ?? 2);
const cores = availableParallelism();
const run = promisify(execFile);

async function mutoolVersion(): Promise<string | undefined> {
  try {
    const { stderr, stdout } = await run("mutool", ["-v"]);
    return (stderr || stdout).trim().split("\n")[0];
  } catch {
    return undefined;
  }
}

const pngDir = join(OUT_DIR, "render-png");
await rm(pngDir, { recursive: true, force: true });
await mkdir(pngDir, { recursive: true });

const corpus = await generateCorpus(join(OUT_DIR, "render-corpus"), { invalid: false });
const mixed = corpus.files.find((f) => f.path.endsWith("mixed.pdf"))!;
const scans = await largePdf("render-scans-24p.pdf", { pageCount: 24, targetBytes: 24_000_000 });
const workloads = [
  { name: "vector+text (24 mixed sizes/rotations)", path: mixed.path, pages: mixed.pageCount },
  { name: "scan-like (24 Letter, 1 MB image each)", path: scans.path, pages: scans.pageCount },
];

const version = await mutoolVersion();
if (!version) {
  console.log("mutool is MISSING: install it with `apt-get update && apt-get install -y mupdf-tools`; the ratio column stays empty.");
}
console.log(`${cores} cores, ${DPI} dpi, ${ROUNDS} rounds per workload; mutool: ${version ?? "missing"}`);

const pool = new RenderPool({ size: cores });
// Workers load mupdf (and, from source, tsx) on start; that is not rendering time.
await Promise.all(Array.from({ length: cores }, () => pool.render(mixed.path, 0, { dpi: 10 })));

// Other processes share the machine, so besides wall-clock rates the table shows pages per
// CPU-second (user + system) of each engine: what one core buys, whatever else is running.
interface Tally {
  pages: number;
  wall: number;
  cpu: number;
}
const engines = [
  "mutool draw (1 thread)",
  "renderPage (1 thread)",
  `RenderPool (${pool.size} workers)`,
  `mutool draw × ${pool.size} processes`,
] as const;
const tallies = new Map<string, Tally>();
const add = (key: string, pages: number, wall: number, cpu: number) => {
  const t = tallies.get(key) ?? { pages: 0, wall: 0, cpu: 0 };
  tallies.set(key, { pages: t.pages + pages, wall: t.wall + wall, cpu: t.cpu + cpu });
};
const cpuNow = () => {
  const u = process.cpuUsage(); // the whole process: main thread and every worker thread
  return (u.user + u.system) / 1e6;
};

for (let r = 0; r < ROUNDS; r++) {
  // Engines take turns within a round so a burst of load elsewhere hits them alike.
  for (const w of workloads) {
    if (version) {
      const t = performance.now();
      const { stderr } = await run("bash", [
        "-c",
        `TIMEFORMAT='cpu %U %S'; time mutool draw -q -r ${DPI} -o '${join(pngDir, "mutool-%d.png")}' '${w.path}' 1-${w.pages} 2>/dev/null`,
      ]);
      const m = /cpu ([\d.]+) ([\d.]+)/.exec(stderr);
      add(`${w.name}|${engines[0]}`, w.pages, (performance.now() - t) / 1000, m ? Number(m[1]) + Number(m[2]) : NaN);
    }
    {
      const t = performance.now();
      const c = cpuNow();
      for (let i = 0; i < w.pages; i++) {
        const out = await renderPage(w.path, i, { dpi: DPI });
        await writeFile(join(pngDir, `single-${i + 1}.png`), out.png);
      }
      add(`${w.name}|${engines[1]}`, w.pages, (performance.now() - t) / 1000, cpuNow() - c);
    }
    {
      const t = performance.now();
      const c = cpuNow();
      await Promise.all(
        Array.from({ length: w.pages }, (_, i) =>
          pool.render(w.path, i, { dpi: DPI }).then((out) => writeFile(join(pngDir, `pool-${i + 1}.png`), out.png)),
        ),
      );
      add(`${w.name}|${engines[2]}`, w.pages, (performance.now() - t) / 1000, cpuNow() - c);
    }
    if (version) {
      // As many mutool processes as pool workers, each drawing its share of the pages: the
      // like-for-like baseline for the pool on a machine whose cores are not otherwise idle.
      const t = performance.now();
      const per = Math.ceil(w.pages / pool.size);
      const outs = await Promise.all(
        Array.from({ length: pool.size }, (_, k) => {
          const first = k * per + 1;
          const last = Math.min(w.pages, first + per - 1);
          return run("bash", [
            "-c",
            `TIMEFORMAT='cpu %U %S'; time mutool draw -q -r ${DPI} -o '${join(pngDir, `mutool${k}-%d.png`)}' '${w.path}' ${first}-${last} 2>/dev/null`,
          ]);
        }),
      );
      const cpu = outs.reduce((sum, o) => {
        const m = /cpu ([\d.]+) ([\d.]+)/.exec(o.stderr);
        return sum + (m ? Number(m[1]) + Number(m[2]) : NaN);
      }, 0);
      add(`${w.name}|${engines[3]}`, w.pages, (performance.now() - t) / 1000, cpu);
    }
  }
}

const rows: (string | number)[][] = [
  [
    "workload",
    "engine",
    "pages",
    "wall s",
    "pages/s",
    "pages/s per core",
    "vs mutool per core",
    "pages/CPU-s",
    "vs mutool per CPU-s",
    `vs mutool ×${pool.size}`,
  ],
];
for (const w of workloads) {
  const base = tallies.get(`${w.name}|${engines[0]}`);
  const basePps = base ? base.pages / base.wall : undefined;
  const baseCpu = base ? base.pages / base.cpu : undefined;
  const par = tallies.get(`${w.name}|${engines[3]}`);
  for (const [i, e] of engines.entries()) {
    const t = tallies.get(`${w.name}|${e}`);
    if (!t) continue;
    const threads = i >= 2 ? pool.size : 1;
    const perCore = t.pages / t.wall / threads;
    const perCpu = t.pages / t.cpu;
    rows.push([
      w.name,
      e,
      t.pages,
      t.wall.toFixed(2),
      (t.pages / t.wall).toFixed(2),
      perCore.toFixed(2),
      basePps ? (perCore / basePps).toFixed(2) : "",
      perCpu.toFixed(2),
      baseCpu ? (perCpu / baseCpu).toFixed(2) : "",
      i === 2 && par ? (par.wall / t.wall).toFixed(2) : "",
    ]);
  }
}
console.log(`load average during the run: ${(await import("node:os")).loadavg().map((l) => l.toFixed(1)).join(" ")}`);
await pool.close();
table(rows);
