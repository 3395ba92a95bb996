// Writes the default corpus of `pnpm bench:e2e` (bench/corpus/e2e, committed): documents of the
// kinds a batch meets, drawn with mupdf.js from seeded random text, so anyone can regenerate it
// and nothing in it was copied from elsewhere.
//   pnpm --filter @docpipe/bench e2e:corpus [dir]   (needs Debian fonts-dejavu-core)
import { createHash } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as mupdf from "mupdf";
import { E2E_CORPUS } from "./corpus/documents.ts";
import { embedFonts, rng, save } from "./corpus/pdf.ts";


export async function writeE2eCorpus(dir: string): Promise<{ name: string; kind: string; pages: number; bytes: number; sha256: string }[]> {
  await rm(dir, { recursive: true, force: true });
  const out = [];
  for (const [i, spec] of E2E_CORPUS.entries()) {
    const doc = new mupdf.PDFDocument();
    try {
      spec.write(doc, embedFonts(doc), rng(1000 + i));
      const bytes = save(doc);
      const path = join(dir, spec.name);
      await mkdir(join(path, ".."), { recursive: true });
      await writeFile(path, bytes);
      out.push({ name: spec.name, kind: spec.kind, pages: doc.countPages(), bytes: bytes.byteLength,
        sha256: createHash("sha256").update(bytes).digest("hex") });
    } finally {
      doc.destroy();
    }
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2] ?? new URL("../../corpus/e2e/", import.meta.url).pathname;
  const files = await writeE2eCorpus(dir);
  const lines = ["file\tpages\tbytes\tsha256\twhat", ...files.map((f) => `${f.name}\t${f.pages}\t${f.bytes}\t${f.sha256}\t${f.kind}`)];
  await writeFile(join(dir, "MANIFEST.tsv"), `${lines.join("\n")}\n`);
  const pages = files.reduce((s, f) => s + f.pages, 0);
  const bytes = files.reduce((s, f) => s + f.bytes, 0);
  console.log(`${files.length} files, ${pages} pages, ${(bytes / 1024 / 1024).toFixed(1)} MiB in ${dir}`);
}
