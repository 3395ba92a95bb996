import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { PdfError } from "./errors.js";

const run = promisify(execFile);

/**
 * Files of 2 GiB or more are beyond mupdf's WASM build (see MAX_MUPDF_FILE_BYTES). For those the
 * library falls back to the native `mutool` from the same project (Debian/Ubuntu package
 * `mupdf-tools`), which has 64-bit offsets and reads the file lazily just the same.
 */
export interface NativeOptions {
  /** Path of the native mutool binary; false disables the fallback. @defaultValue "mutool" */
  mutool?: string | false;
  /**
   * Files of at least this many bytes go through native mutool. It cannot be raised past 2 GiB
   * (mupdf's WASM build cannot read further); a lower value sends smaller files the same way,
   * so a test can take the native path without a 2 GiB file. @defaultValue 2 GiB
   */
  nativeMinBytes?: number;
}

/**
 * mupdf's WASM build passes stream positions to JavaScript as signed 32-bit integers, so any
 * byte at or beyond 2 GiB is unreachable (it reads at position -2^31 and then "repairs" the file
 * into nonsense). Refuse such files up front with a clear reason instead.
 */
export const MAX_MUPDF_FILE_BYTES = 2 ** 31 - 1;

/** Whether a file of `size` bytes is read by native mutool rather than mupdf's WASM build. */
export function readsNatively(size: number, opts: NativeOptions): boolean {
  return size > MAX_MUPDF_FILE_BYTES || (opts.nativeMinBytes !== undefined && size >= opts.nativeMinBytes);
}

function binary(opts: NativeOptions, path: string, size: number): string {
  if (opts.mutool === false) {
    throw new PdfError("file_too_large", `file is ${size} bytes; mupdf (WASM) can address at most 2 GiB`, { path });
  }
  return opts.mutool ?? "mutool";
}

async function mutool(bin: string, args: string[], path: string, size: number): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(bin, args, { maxBuffer: 16 << 20 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === "ENOENT") {
      throw new PdfError(
        "file_too_large",
        `file is ${size} bytes, over mupdf (WASM)'s 2 GiB, and the native fallback "${bin}" is not installed (apt-get install mupdf-tools)`,
        { path, cause: e },
      );
    }
    const stderr = err.stderr ?? "";
    if (/cannot authenticate password/.test(stderr)) throw new PdfError("encrypted", "the PDF needs a password", { path });
    throw new PdfError("corrupt", `mutool ${args[0]} failed: ${lastLine(stderr) || err.message}`, { path, cause: e });
  }
}

function lastLine(s: string): string {
  return s.trim().split("\n").filter(Boolean).pop() ?? "";
}

/** Page count and repair/encryption state of a large file, read by native mutool. */
export async function nativeInspect(
  path: string,
  size: number,
  opts: NativeOptions,
): Promise<{ pageCount: number; repaired: boolean }> {
  const bin = binary(opts, path, size);
  const { stdout, stderr } = await mutool(bin, ["show", path, "trailer/Root/Pages/Count"], path, size);
  if (/cannot authenticate password/.test(stderr)) throw new PdfError("encrypted", "the PDF needs a password", { path });
  const pageCount = Number(stdout.trim());
  if (!Number.isInteger(pageCount) || pageCount < 1) {
    throw new PdfError("corrupt", `mutool reports no page count (${JSON.stringify(stdout.trim())})`, { path });
  }
  return { pageCount, repaired: /repairing PDF document/.test(stderr) };
}

/** Writes pages first..last (1-based, inclusive) of a large file with native mutool. */
export async function nativeSplitRange(
  path: string,
  size: number,
  first: number,
  last: number,
  outPath: string,
  opts: NativeOptions,
): Promise<void> {
  const bin = binary(opts, path, size);
  await mutool(bin, ["merge", "-o", outPath, path, `${first}-${last}`], path, size);
}
