// Event-loop delay while one 2,000-page document is inspected and split into 10-page chunks: on this thread vs in a PdfPool worker.
import { monitorEventLoopDelay } from "node:perf_hooks";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generatePdf, inspectPdf, splitChunks, PdfPool } from "./packages/pdf/src/index.ts";
const dir = await mkdtemp(join(tmpdir(), "offloop-eld-"));
const src = join(dir, "big.pdf");
await generatePdf(src, Array.from({ length: 2000 }, (_, i) => ({ widthPt: 612, heightPt: 792, content: i % 5 === 0 ? ("mixed" as const) : ("text" as const) })));
const pool = new PdfPool({ size: 1 });
await pool.inspect(src); // the worker is up
async function measure(label: string, work: () => Promise<number>) {
  const h = monitorEventLoopDelay({ resolution: 10 });
  const cpu0 = process.cpuUsage(); const t = performance.now();
  h.enable(); const n = await work(); h.disable();
  const elu = performance.eventLoopUtilization();
  console.log(`${label}: ${n} chunks in ${Math.round(performance.now() - t)} ms; event-loop delay max ${(h.max / 1e6).toFixed(0)} ms, p99 ${(h.percentile(99) / 1e6).toFixed(0)} ms, mean ${(h.mean / 1e6).toFixed(1)} ms`);
}
await measure("this thread (inspectPdf + splitChunks)", async () => { await inspectPdf(src); let n = 0; for await (const _ of splitChunks(src, { dir: join(dir, "a"), pagesPerChunk: 10 })) n++; return n; });
await measure("PdfPool worker (inspect + splitChunks)", async () => { await pool.inspect(src); let n = 0; for await (const _ of pool.splitChunks(src, { dir: join(dir, "b"), pagesPerChunk: 10 })) n++; return n; });
await pool.close();
