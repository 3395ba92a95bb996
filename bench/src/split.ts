// Peak RSS of splitting generated PDFs of different sizes into ≤10-page chunks, each split in a
// child process. Goal: under 512 MiB, independent of the file size. A file of 2 GiB or more goes
// through native mutool (one `mutool merge` per chunk): its peak counts those processes too.
//   pnpm bench:split                 # ~100 MB / 1,000 pages, ~1.1 GB / 1,100 pages, ~3.3 GB (3.1 GiB) / 1,100 pages
//   BENCH_SPLIT="50:500,2000:1000"   # MB:pages pairs
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { MAX_MUPDF_FILE_BYTES } from "../../packages/pdf/src/index.ts";
import { largePdf, mb, table } from "./common.ts";

/** GNU time: its %M is the peak RSS of the child and of every process the child waited for (the mutool runs). */
const TIME = "/usr/bin/time";

const GOAL = 512 * 1024 * 1024;
const specs = (process.env.BENCH_SPLIT ?? "100:1000,1100:1100,3300:1100").split(",").map((s) => {
  const [sizeMb, pages] = s.split(":").map(Number);
  if (!sizeMb || !pages) throw new Error(`BENCH_SPLIT entry "${s}" is not MB:pages`);
  return { sizeMb, pages };
});

const rows: (string | number)[][] = [
  ["file", "path", "pages", "chunks", "largest chunk", "split time", "MB/s", "child RSS at start", "peak RSS", "with mutool", "< 512 MiB"],
];
for (const { sizeMb, pages } of specs) {
  const f = await largePdf(`split-${sizeMb}mb-${pages}p.pdf`, { pageCount: pages, targetBytes: sizeMb * 1_000_000 });
  if (f.generatedMs) console.log(`generated ${f.path} (${mb(f.sizeBytes)}, ${f.pageCount} pages) in ${(f.generatedMs / 1000).toFixed(1)} s`);
  const child = [process.execPath, "--import", "tsx", new URL("./split-child.ts", import.meta.url).pathname, f.path, "10"];
  const timed = existsSync(TIME);
  const { stdout, stderr } = await promisify(execFile)(timed ? TIME : child[0]!, timed ? ["-f", "maxrss=%M", ...child] : child.slice(1), {
    maxBuffer: 1 << 20,
  });
  const withChildren = timed ? Number(/maxrss=(\d+)/.exec(stderr)?.[1] ?? NaN) * 1024 : NaN;
  const r = JSON.parse(stdout.trim().split("\n").pop()!) as {
    chunks: number;
    pages: number;
    ms: number;
    baseRss: number;
    maxRss: number;
    largestChunk: number;
  };
  if (r.pages !== f.pageCount) throw new Error(`split covered ${r.pages} of ${f.pageCount} pages`);
  rows.push([
    mb(f.sizeBytes),
    f.sizeBytes > MAX_MUPDF_FILE_BYTES ? "mutool" : "mupdf",
    f.pageCount,
    r.chunks,
    mb(r.largestChunk),
    `${(r.ms / 1000).toFixed(1)} s`,
    (f.sizeBytes / 1e6 / (r.ms / 1000)).toFixed(0),
    mb(r.baseRss),
    mb(r.maxRss),
    Number.isNaN(withChildren) ? "-" : mb(withChildren),
    Math.max(r.maxRss, Number.isNaN(withChildren) ? 0 : withChildren) < GOAL ? "yes" : "NO",
  ]);
}
table(rows);
