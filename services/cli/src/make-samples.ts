// Writes the bundled sample PDFs in samples/ (committed; `pnpm start` processes them).
// Deterministic: running it again gives the same files. Usage: pnpm samples
import { DEFAULT_CORPUS, generateCorpus } from "@docpipe/pdf";
import { promises as fs } from "node:fs";
import path from "node:path";

const dir = path.resolve(import.meta.dirname, "../../../samples");
await fs.rm(dir, { recursive: true, force: true });
await fs.mkdir(path.join(dir, "reports"), { recursive: true });
const corpus = await generateCorpus(dir, {
  invalid: false,
  files: [
    ...DEFAULT_CORPUS,
    {
      name: "reports/with-blank-pages.pdf",
      pages: [
        { widthPt: 612, heightPt: 792, content: "text" },
        { widthPt: 612, heightPt: 792, content: "blank" },
        { widthPt: 612, heightPt: 792, content: "mixed" },
        { widthPt: 612, heightPt: 792, content: "blank" },
      ],
    },
  ],
});
await fs.writeFile(path.join(dir, "README.txt"), "Sample documents for `pnpm start`. Not a PDF: counted as skipped.\n");
for (const f of corpus.files) console.log(`${path.relative(dir, f.path)}: ${f.pageCount} pages, ${f.sizeBytes} bytes`);
