// The reference: `mutool draw` (native mupdf) rendering the same pages at the same resolution to
// PNG, one process per core, each taking the next run of pages as soon as it is free.
import { execFile, spawn } from "node:child_process";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { reapedChildrenCpuSeconds } from "./proc.ts";

/** Pages per mutool run: small enough to balance the cores, large enough that starting mutool is noise. */
const PAGES_PER_RUN = 20;

export interface ReferenceResult {
  version: string;
  processes: number;
  pages: number;
  wallSeconds: number;
  cpuSeconds: number;
  pngBytes: number;
}

export async function mutoolVersion(): Promise<string | undefined> {
  try {
    const { stdout, stderr } = await promisify(execFile)("mutool", ["-v"]);
    return (stderr || stdout).trim().split("\n")[0];
  } catch {
    return undefined;
  }
}

function draw(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn("mutool", args, { stdio: ["ignore", "ignore", "ignore"] });
    p.on("error", reject);
    p.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`mutool ${args.join(" ")} exited with ${code}`))));
  });
}

/** Renders every page of `files` (path → page count) at `dpi` with `processes` mutool processes at a time. */
export async function runReference(
  files: { path: string; pages: number }[],
  opts: { dpi: number; processes: number; outDir: string },
): Promise<ReferenceResult> {
  const version = await mutoolVersion();
  if (!version) throw new Error("mutool is missing: apt-get install mupdf-tools (Debian/Ubuntu)");
  await rm(opts.outDir, { recursive: true, force: true });
  const runs = files.flatMap((f, i) =>
    Array.from({ length: Math.ceil(f.pages / PAGES_PER_RUN) }, (_, k) => ({
      path: f.path,
      first: k * PAGES_PER_RUN + 1,
      last: Math.min(f.pages, (k + 1) * PAGES_PER_RUN),
      out: join(opts.outDir, String(i)),
    })),
  );
  for (const r of runs) await mkdir(r.out, { recursive: true });
  const cpu0 = reapedChildrenCpuSeconds();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: opts.processes }, async () => {
      while (next < runs.length) {
        const r = runs[next++]!;
        await draw(["draw", "-q", "-r", String(opts.dpi), "-o", join(r.out, "%d.png"), r.path, `${r.first}-${r.last}`]);
      }
    }),
  );
  const wallSeconds = (performance.now() - t0) / 1000;
  const cpuSeconds = reapedChildrenCpuSeconds() - cpu0;
  const { stdout } = await promisify(execFile)("du", ["-sb", opts.outDir]);
  return {
    version,
    processes: opts.processes,
    pages: files.reduce((s, f) => s + f.pages, 0),
    wallSeconds,
    cpuSeconds,
    pngBytes: Number(stdout.split("\t")[0]),
  };
}
