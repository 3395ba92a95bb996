// Peak RSS of splitting generated PDFs of different sizes into ≤10-page chunks, each split in a
// child process. Goal: under 512 MiB, independent of the file size.
//   pnpm bench:split                 # ~100 MB / 1,000 pages and ~1.1 GB / 1,100 pages
//   BENCH_SPLIT="50:500,2000:1000"   # MB:pages pairs
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { largePdf, mb, table } from "./common.ts";

const GOAL = 512 * 1024 * 1024;
const specs = (process.env.BENCH_SPLIT ?? "100:1000,1100:1100").split(",").map((s) => {
  const [sizeMb, pages] = s.split(":").map(Number);
  if (!sizeMb || !pages) throw new Error(`BENCH_SPLIT entry "${s}" is not MB:pages`);
  return { sizeMb, pages };
});

const rows: (string | number)[][] = [
  ["file", "pages", "chunks", "largest chunk", "split time", "MB/s", "child RSS at start", "peak RSS", "< 512 MiB"],
];
for (const { sizeMb, pages } of specs) {
  const f = await largePdf(`split-${sizeMb}mb-${pages}p.pdf`, { pageCount: pages, targetBytes: sizeMb * 1_000_000 });
  if (f.generatedMs) console.log(`generated ${f.path} (${mb(f.sizeBytes)}, ${f.pageCount} pages) in ${(f.generatedMs / 1000).toFixed(1)} s`);
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", new URL("./split-child.ts", import.meta.url).pathname, f.path, "10"],
    { maxBuffer: 1 << 20 },
  );
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
    f.pageCount,
    r.chunks,
    mb(r.largestChunk),
    `${(r.ms / 1000).toFixed(1)} s`,
    (f.sizeBytes / 1e6 / (r.ms / 1000)).toFixed(0),
    mb(r.baseRss),
    mb(r.maxRss),
    r.maxRss < GOAL ? "yes" : "NO",
  ]);
}
table(rows);
