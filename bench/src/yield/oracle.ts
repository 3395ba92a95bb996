// What mutool and pdftoppm make of each PDF of a folder: the oracle docpipe's yield is held to.
//   pnpm --filter @docpipe/bench yield:oracle [folder] [out.json]
// Defaults: the real-world corpus (tests/corpus/real-world/files, see its README) and its
// committed oracle.json. Runs two documents at a time.
import { readdir, writeFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { CORPUS_FILES, ORACLE_PATH, type Oracle, type OracleEntry } from "./corpus.ts";
import { drawWith, referenceVersions, type ReferenceOptions } from "./reference.ts";

export const ORACLE_DPI = 72;
const TIMEOUT_MS = 60_000;

/** Every PDF under folder (recursively, by extension, any case), relative to it, sorted. */
export async function pdfsIn(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && /\.pdf$/i.test(e.name))
    .map((e) => relative(folder, join(e.parentPath, e.name)))
    .sort();
}

/** Runs both reference tools over files (relative to folder), `parallel` documents at a time. */
export async function referenceRun(
  folder: string,
  files: string[],
  opts: { scratch: string; parallel?: number; dpi?: number; onDone?: (file: string, done: number) => void },
): Promise<Record<string, OracleEntry>> {
  const entries: Record<string, OracleEntry> = {};
  let next = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: opts.parallel ?? 2 }, async (_, lane) => {
      const ref: ReferenceOptions = { dpi: opts.dpi ?? ORACLE_DPI, timeoutMs: TIMEOUT_MS, scratch: join(opts.scratch, String(lane)) };
      while (next < files.length) {
        const file = files[next++]!;
        const path = join(folder, file);
        entries[file] = { mutool: await drawWith("mutool", path, ref), pdftoppm: await drawWith("pdftoppm", path, ref) };
        opts.onDone?.(file, ++done);
      }
    }),
  );
  return Object.fromEntries(Object.entries(entries).sort(([a], [b]) => (a < b ? -1 : 1)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const folder = resolve(process.argv[2] ?? CORPUS_FILES);
  const out = resolve(process.argv[3] ?? ORACLE_PATH);
  const files = await pdfsIn(folder);
  if (files.length === 0) throw new Error(`no PDFs under ${folder} (the corpus: pnpm --filter @docpipe/bench yield:gather)`);
  const entries = await referenceRun(folder, files, {
    scratch: join(process.env.TMPDIR ?? "/tmp", `docpipe-oracle-${process.pid}`),
    onDone: (file, done) => process.stderr.write(`\r${done}/${files.length} ${file.slice(-60).padEnd(60)}`),
  });
  const oracle: Oracle = { dpi: ORACLE_DPI, tools: await referenceVersions(), files: entries };
  await writeFile(out, `${JSON.stringify(oracle, null, 1)}\n`);
  process.stderr.write(`\n${files.length} documents → ${out}\n`);
}
