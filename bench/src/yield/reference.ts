// The reference renderers docpipe's yield is measured against: native `mutool draw` (Debian
// mupdf-tools) and poppler's `pdftoppm`. Each draws a whole document into a scratch folder; a page
// counts as drawn when its PNG exists and is a PNG. Both keep going past a broken page.
import { execFile } from "node:child_process";
import { mkdir, open, readdir, rm } from "node:fs/promises";
import { join } from "node:path";

export type ReferenceTool = "mutool" | "pdftoppm";

export interface ReferenceResult {
  /** Pages the tool counts (mutool pages / pdfinfo), or null when it cannot open the file. */
  pages: number | null;
  /** 1-based numbers of the pages it wrote a PNG for, ascending. */
  drawn: number[];
  /** Its exit code, or "timeout". */
  exit: number | "timeout";
}

export interface ReferenceOptions {
  dpi: number;
  timeoutMs: number;
  /** Scratch folder, emptied before and after each document. */
  scratch: string;
}

interface Run {
  code: number | "timeout";
  stdout: string;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 << 20 }, (err, stdout) => {
      if (!err) return resolve({ code: 0, stdout });
      const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
      if (e.code === "ENOENT") return reject(new Error(`${cmd} is not installed (Debian: apt-get install mupdf-tools poppler-utils)`));
      resolve({ code: e.killed ? "timeout" : typeof e.code === "number" ? e.code : 1, stdout: String(stdout) });
    });
  });
}

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47]);

async function isPng(path: string): Promise<boolean> {
  const fh = await open(path, "r");
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    return bytesRead === 4 && head.equals(PNG_MAGIC);
  } finally {
    await fh.close();
  }
}

/** Page numbers of the PNGs `prefix-<n>.png` (pdftoppm zero-pads n) in dir. */
async function drawnPages(dir: string): Promise<number[]> {
  const pages: number[] = [];
  for (const name of await readdir(dir)) {
    const m = /-(\d+)\.png$/.exec(name);
    if (m && (await isPng(join(dir, name)))) pages.push(Number(m[1]));
  }
  return pages.sort((a, b) => a - b);
}

async function pageCount(tool: ReferenceTool, pdf: string, timeoutMs: number): Promise<number | null> {
  if (tool === "mutool") {
    const r = await run("mutool", ["pages", pdf], timeoutMs);
    const n = r.stdout.match(/<page pagenum=/g)?.length ?? 0;
    return n > 0 ? n : null;
  }
  const r = await run("pdfinfo", [pdf], timeoutMs);
  const m = /^Pages:\s+(\d+)/m.exec(r.stdout);
  return m ? Number(m[1]) : null;
}

/** Draws every page of pdf with tool; never throws for a bad PDF, only for a missing tool. */
export async function drawWith(tool: ReferenceTool, pdf: string, opts: ReferenceOptions): Promise<ReferenceResult> {
  const dir = join(opts.scratch, tool);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  try {
    const dpi = String(opts.dpi);
    const r =
      tool === "mutool"
        ? await run("mutool", ["draw", "-q", "-r", dpi, "-o", join(dir, "p-%d.png"), pdf], opts.timeoutMs)
        : await run("pdftoppm", ["-r", dpi, "-png", pdf, join(dir, "p")], opts.timeoutMs);
    return { pages: await pageCount(tool, pdf, opts.timeoutMs), drawn: await drawnPages(dir), exit: r.code };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** mutool's and pdftoppm's versions, for the record. */
export async function referenceVersions(): Promise<Record<ReferenceTool, string>> {
  const first = async (cmd: string, args: string[]) =>
    new Promise<string>((resolve) =>
      execFile(cmd, args, (err, stdout, stderr) => resolve(err?.message.includes("ENOENT") ? "missing" : `${stdout}${stderr}`.trim().split("\n")[0] ?? "")),
    );
  return { mutool: await first("mutool", ["-v"]), pdftoppm: await first("pdftoppm", ["-v"]) };
}
