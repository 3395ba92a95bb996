import { GetObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import type { CorpusPage } from "@docpipe/pdf";
import { createLogger, type Logger } from "@docpipe/queue";
import { PassThrough } from "node:stream";

/** Quiet unless TEST_LOG names a level (e.g. TEST_LOG=info pnpm exec vitest run tests/e2e). */
export function testLogger(): Logger {
  return createLogger({ service: "e2e", level: process.env.TEST_LOG ?? "error" });
}

/**
 * The pixel size a page must have at `dpi`, from the generator's own record of the page:
 * round(points / 72 × dpi) per side, sides swapped when /Rotate turns the page a quarter.
 */
export function expectedPixels(page: CorpusPage, dpi: number): { width: number; height: number } {
  const w = Math.round((page.widthPt / 72) * dpi);
  const h = Math.round((page.heightPt / 72) * dpi);
  return page.rotate === 90 || page.rotate === 270 ? { width: h, height: w } : { width: w, height: h };
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Width and height read straight from the IHDR chunk (bytes 16–24), not from any decoder. */
export function pngSize(bytes: Uint8Array): { width: number; height: number } {
  if (bytes.length < 24 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) throw new Error("not a PNG");
  if (Buffer.from(bytes.subarray(12, 16)).toString("latin1") !== "IHDR") throw new Error("PNG without IHDR first");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** Every key under `prefix`, following continuation tokens (small pages, so paging is exercised). */
export async function listKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 100, ContinuationToken: token }));
    for (const o of out.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = out.IsTruncated ? out.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** The first 24 bytes of an object: enough for a PNG's signature and IHDR size. */
export async function readHead(s3: S3Client, bucket: string, key: string): Promise<Uint8Array> {
  const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: "bytes=0-23" }));
  if (!out.Body) throw new Error(`s3://${bucket}/${key}: empty body`);
  const bytes = await out.Body.transformToByteArray();
  return bytes.subarray(0, 24);
}

/** Runs `fn` on items with at most `limit` in flight. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

/** A stdout stand-in that keeps what was written, for code that draws progress and prints a report. */
export function captureOut(): { out: NodeJS.WriteStream; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new PassThrough();
  stream.on("data", (c: Buffer) => chunks.push(c));
  return {
    out: Object.assign(stream, { isTTY: false }) as unknown as NodeJS.WriteStream,
    text: () => Buffer.concat(chunks).toString("utf8"),
  };
}
