import type { Hash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { coerceError, S3Error, S3ObjectNotFoundError } from "./errors.js";

/** Parts of a multipart upload; S3 needs at least 5 MiB per part but the last. */
const PART_SIZE = 8 * 1024 * 1024;
/** Parts uploaded at once per file: bounds memory to about PART_SIZE × this. */
const PART_QUEUE = 4;

function isNotFound(e: unknown): boolean {
  const err = e as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  return err?.name === "NoSuchKey" || err?.name === "NotFound" || err?.Code === "NoSuchKey" || err?.$metadata?.httpStatusCode === 404;
}

/** Wraps an S3 SDK error into {@link S3ObjectNotFoundError} (permanent) or {@link S3Error} (transient), with bucket and key. */
export function toS3Error(e: unknown, op: string, bucket: string, key: string): S3Error | S3ObjectNotFoundError {
  if (e instanceof S3Error || e instanceof S3ObjectNotFoundError) return e;
  if (isNotFound(e)) return new S3ObjectNotFoundError("s3_not_found", `s3://${bucket}/${key} does not exist`, { cause: e, bucket, key });
  const err = coerceError(e);
  return new S3Error("s3_unavailable", `S3 ${op} of s3://${bucket}/${key} failed: ${err.message}`, { cause: e, bucket, key });
}

export interface DownloadOptions {
  /**
   * Fed every byte of the object as it streams to disk (e.g. `createHash("sha256")`), so a
   * content hash costs no second read of the file. Digest it after the download resolves.
   */
  hash?: Hash;
}

/**
 * Streams an object to `path` and returns its size in bytes. The body is never held in memory,
 * so a multi-gigabyte PDF costs a file, not a heap. The file is written beside `path` and renamed
 * into place, so a crash never leaves a truncated file under the final name.
 */
export async function downloadToFile(s3: S3Client, bucket: string, key: string, path: string, opts: DownloadOptions = {}): Promise<number> {
  try {
    await mkdir(dirname(path), { recursive: true });
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return await bodyToFile(out.Body as Readable | undefined, path, opts.hash);
  } catch (e) {
    throw toS3Error(e, "download", bucket, key);
  }
}

async function bodyToFile(body: Readable | undefined, path: string, hash?: Hash): Promise<number> {
  const partial = `${path}.${process.pid}.${Date.now()}.part`;
  try {
    if (!body) throw new Error("GetObject returned no body");
    if (hash) {
      const tap = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          done(null, chunk);
        },
      });
      await pipeline(body, tap, createWriteStream(partial));
    } else {
      await pipeline(body, createWriteStream(partial));
    }
    await rename(partial, path);
    return (await stat(path)).size;
  } catch (e) {
    body?.destroy();
    await rm(partial, { force: true });
    throw e;
  }
}

/** An object read by {@link download}: in memory, or in a file when it was too large for that. */
export type Downloaded = { bytes: Uint8Array; size: number } | { path: string; size: number };

/**
 * Reads an object with one GetObject: into memory when it is at most `inMemoryMaxBytes` (a page
 * or a chunk: no file, no file-system calls), otherwise streamed to the file `spillTo()` names
 * (see downloadToFile), so an unexpectedly large object costs a file, not a heap. In memory, the
 * body must be exactly the ContentLength S3 announced: a short or long body is an error, never a
 * truncated PDF. The bytes own their ArrayBuffer, so they can be moved to a worker thread.
 */
export async function download(
  s3: S3Client,
  bucket: string,
  key: string,
  opts: { inMemoryMaxBytes: number; spillTo: () => Promise<string> },
): Promise<Downloaded> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const body = out.Body as Readable | undefined;
    const length = out.ContentLength;
    if (length === undefined || length > opts.inMemoryMaxBytes) {
      const path = await opts.spillTo();
      await mkdir(dirname(path), { recursive: true });
      return { path, size: await bodyToFile(body, path) };
    }
    if (!body) throw new Error("GetObject returned no body");
    const bytes = new Uint8Array(length);
    let at = 0;
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      if (at + chunk.byteLength > length) {
        body.destroy();
        throw new Error(`body is longer than its Content-Length ${length}`);
      }
      bytes.set(chunk, at);
      at += chunk.byteLength;
    }
    if (at !== length) throw new Error(`body ended after ${at} of ${length} bytes`);
    return { bytes, size: length };
  } catch (e) {
    throw toS3Error(e, "download", bucket, key);
  }
}

/**
 * Uploads a file or bytes. Under 8 MiB (every page PDF, PNG and chunk of ordinary size) that is
 * one PutObject, tags included (`x-amz-tagging`), so a tagged page costs one request, not two.
 * Larger files stream from disk through lib-storage's multipart `Upload`, 4 parts at a time,
 * and get their tags with PutObjectTagging once the object exists. A client from
 * createS3Client signs the body by its CRC32 alone (UNSIGNED-PAYLOAD).
 */
export async function uploadFile(
  s3: S3Client,
  bucket: string,
  key: string,
  pathOrBody: string | Uint8Array,
  contentType?: string,
  opts: { tags?: Record<string, string> } = {},
): Promise<void> {
  try {
    const size = typeof pathOrBody === "string" ? (await stat(pathOrBody)).size : pathOrBody.byteLength;
    const tags = Object.entries(opts.tags ?? {});
    if (size < PART_SIZE) {
      const body = typeof pathOrBody === "string" ? await readFile(pathOrBody) : pathOrBody;
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentLength: body.byteLength,
          // Whatever the client's requestChecksumCalculation: S3 checks this CRC32 of the body before it stores the object.
          ChecksumAlgorithm: "CRC32",
          ...(contentType && { ContentType: contentType }),
          ...(tags.length > 0 && { Tagging: new URLSearchParams(tags).toString() }),
        }),
      );
      return;
    }
    const upload = new Upload({
      client: s3,
      params: {
        Bucket: bucket,
        Key: key,
        Body: typeof pathOrBody === "string" ? createReadStream(pathOrBody) : pathOrBody,
        ...(contentType && { ContentType: contentType }),
      },
      tags: tags.map(([Key, Value]) => ({ Key, Value })),
      partSize: PART_SIZE,
      queueSize: PART_QUEUE,
      // A failed multipart upload is aborted rather than left to accrue storage.
      leavePartsOnError: false,
    });
    await upload.done();
  } catch (e) {
    throw toS3Error(e, "upload", bucket, key);
  }
}
