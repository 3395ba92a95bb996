import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
// Imported from source: the bench runs under tsx and measures the code as it is in the tree.
import { generateLargePdf, type LargePdfOptions } from "../../packages/pdf/src/index.ts";

export const OUT_DIR = new URL("../out/", import.meta.url).pathname;

/** Generates (or reuses, when an earlier run left the same file) a large PDF under bench/out. */
export async function largePdf(name: string, opts: LargePdfOptions): Promise<{ path: string; sizeBytes: number; pageCount: number; generatedMs: number }> {
  await mkdir(OUT_DIR, { recursive: true });
  const path = join(OUT_DIR, name);
  const metaPath = `${path}.json`;
  const want = JSON.stringify(opts);
  try {
    const meta = JSON.parse(await readFile(metaPath, "utf8")) as { opts: string; sizeBytes: number; pageCount: number };
    if (meta.opts === want && (await stat(path)).size === meta.sizeBytes) {
      return { path, sizeBytes: meta.sizeBytes, pageCount: meta.pageCount, generatedMs: 0 };
    }
  } catch {
    // no usable earlier file
  }
  const t = performance.now();
  const f = await generateLargePdf(path, opts);
  await writeFile(metaPath, JSON.stringify({ opts: want, sizeBytes: f.sizeBytes, pageCount: f.pageCount }));
  return { path, sizeBytes: f.sizeBytes, pageCount: f.pageCount, generatedMs: performance.now() - t };
}

export function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Prints rows as an aligned text table. */
export function table(rows: (string | number)[][]): void {
  const cells = rows.map((r) => r.map(String));
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  console.log(line(cells[0]!));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of cells.slice(1)) console.log(line(r));
}
