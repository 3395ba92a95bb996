// Runs one split in its own process so its peak RSS is measured alone. Prints one JSON line.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { splitChunks } from "../../packages/pdf/src/index.ts";

const [src, per = "10"] = process.argv.slice(2);
if (!src) throw new Error("usage: split-child.ts <pdf> [pagesPerChunk]");
const dir = await mkdtemp(join(tmpdir(), "docpipe-bench-split-"));
const baseRss = process.memoryUsage().rss;
const t = performance.now();
let chunks = 0;
let pages = 0;
let chunkBytes = 0;
try {
  for await (const c of splitChunks(src, { dir, pagesPerChunk: Number(per) })) {
    chunks++;
    pages += c.last - c.first + 1;
    const { stat } = await import("node:fs/promises");
    chunkBytes = Math.max(chunkBytes, (await stat(c.path)).size);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
console.log(
  JSON.stringify({
    chunks,
    pages,
    ms: performance.now() - t,
    baseRss,
    maxRss: process.resourceUsage().maxRSS * 1024,
    largestChunk: chunkBytes,
  }),
);
