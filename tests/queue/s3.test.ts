import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, GetObjectTaggingCommand, HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { S3ObjectNotFoundError, createS3Client, download, downloadToFile, uploadFile } from "@docpipe/queue";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}

let dir: string;
let server: S3rverInstance;
let s3: S3Client;
const bucket = "queue-s3-test";
const otherBucket = "queue-s3-test-other";
/** Names of the S3 commands sent, to tell a multipart upload from a single PUT. */
const commands: string[] = [];

/** Headers of every request `s3` sends while `fn` runs, with the command that sent it. */
async function recordHeaders(fn: () => Promise<unknown>): Promise<(Record<string, string> & { command: string })[]> {
  const sent: (Record<string, string> & { command: string })[] = [];
  s3.middlewareStack.add(
    (next, context) => (args) => {
      sent.push({ ...(args.request as { headers: Record<string, string> }).headers, command: context.commandName ?? "?" });
      return next(args);
    },
    { step: "deserialize", name: "recordHeaders" },
  );
  try {
    await fn();
  } finally {
    s3.middlewareStack.remove("recordHeaders");
  }
  return sent;
}

async function sha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "queue-s3-"));
  // s3rver is a dependency of @docpipe/local-stack; these tests need only S3, so start it alone.
  const require = createRequire(new URL("../../packages/local-stack/package.json", import.meta.url));
  const S3rver = require("s3rver") as new (opts: object) => S3rverInstance;
  server = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory: join(dir, "s3") });
  const { port } = await server.run();
  s3 = createS3Client({
    region: "us-east-1",
    endpoint: `http://127.0.0.1:${port}`,
    forcePathStyle: true,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
  s3.middlewareStack.add(
    (next, context) => (args) => {
      commands.push(context.commandName ?? "?");
      return next(args);
    },
    { step: "initialize", name: "recordCommands" },
  );
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(new CreateBucketCommand({ Bucket: otherBucket }));
});

afterAll(async () => {
  s3?.destroy();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("S3 helpers", () => {
  it("uploads a big file in parts and streams it back byte for byte", async () => {
    commands.length = 0;
    const src = join(dir, "big.bin");
    // 20 MiB: three 8 MiB parts, the last one short.
    await writeFile(src, randomBytes(20 * 1024 * 1024));
    const sent = await recordHeaders(() => uploadFile(s3, bucket, "docs/big file.pdf", src, "application/pdf", { tags: { kind: "chunk" } }));
    // Each 8 MiB part is signed by its CRC32, not by a SHA-256 of its bytes.
    const parts = sent.filter((h) => h.command === "UploadPartCommand");
    expect(parts).toHaveLength(3);
    for (const part of parts) expect(part).toMatchObject({ "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-checksum-crc32": expect.any(String) });

    const tagging = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: "docs/big file.pdf" }));
    expect(tagging.TagSet).toEqual([{ Key: "kind", Value: "chunk" }]);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "docs/big file.pdf" }));
    expect(head.ContentLength).toBe(20 * 1024 * 1024);
    expect(head.ContentType).toBe("application/pdf");
    expect(commands.filter((c) => c === "UploadPartCommand")).toHaveLength(3);
    expect(commands).toContain("CompleteMultipartUploadCommand");

    const out = join(dir, "down", "big.bin");
    const bytes = await downloadToFile(s3, bucket, "docs/big file.pdf", out);
    expect(bytes).toBe(20 * 1024 * 1024);
    expect(await sha256(out)).toBe(await sha256(src));
    // No partial file is left beside the result.
    expect(await readdir(join(dir, "down"))).toEqual(["big.bin"]);
  });

  it("uploads bytes in one request, its integrity in a CRC32 rather than a SHA-256 in the signature", async () => {
    commands.length = 0;
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
    const sent = await recordHeaders(() => uploadFile(s3, bucket, "images/1.png", png, "image/png"));
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-checksum-crc32": "x5GnCw==" });
    expect(sent[0]!.authorization).toMatch(/SignedHeaders=.*x-amz-checksum-crc32/);
    const out = join(dir, "1.png");
    expect(await downloadToFile(s3, bucket, "images/1.png", out)).toBe(7);
    expect(new Uint8Array(await readFile(out))).toEqual(png);
    expect(commands).toContain("PutObjectCommand");
    expect(commands).not.toContain("UploadPartCommand");
  });

  it("keeps concurrent requests to two buckets apart: the same keys, each bucket its own bytes", async () => {
    // SDK settings that share one request context among a command's requests (cacheMiddleware)
    // mix these up: a GetObject or PutObject reaches the other bucket.
    const keys = Array.from({ length: 40 }, (_, i) => `same/${i}.bin`);
    const bodies = new Map<string, Uint8Array>();
    for (const b of [bucket, otherBucket]) for (const k of keys) bodies.set(`${b}/${k}`, new Uint8Array(randomBytes(2000)));
    await Promise.all([...bodies].map(([path, body]) => uploadFile(s3, path.slice(0, path.indexOf("/")), path.slice(path.indexOf("/") + 1), body)));
    const read = await Promise.all(
      [...bodies.keys()].map(async (path) => {
        const got = await download(s3, path.slice(0, path.indexOf("/")), path.slice(path.indexOf("/") + 1), { inMemoryMaxBytes: 1 << 20, spillTo: () => Promise.reject(new Error("no spill")) });
        return [path, "bytes" in got ? got.bytes : undefined] as const;
      }),
    );
    for (const [path, bytes] of read) expect(bytes, path).toEqual(bodies.get(path));
  });

  it("uploads a small tagged file in one PutObject that carries its tags", async () => {
    const src = join(dir, "page.pdf");
    await writeFile(src, "%PDF-1.7 a page");
    commands.length = 0;
    await uploadFile(s3, bucket, "pages/1.pdf", src, "application/pdf", { tags: { "docpipe-intermediate": "page", "a b": "c&d" } });
    expect(commands).toEqual(["PutObjectCommand"]);
    const tagging = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: "pages/1.pdf" }));
    expect(tagging.TagSet).toEqual([
      { Key: "docpipe-intermediate", Value: "page" },
      { Key: "a b", Value: "c&d" },
    ]);
  });

  it("reports a missing object as a permanent S3ObjectNotFoundError and leaves no file", async () => {
    const out = join(dir, "missing", "x.pdf");
    const err = await downloadToFile(s3, bucket, "no/such/key.pdf", out).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(S3ObjectNotFoundError);
    expect(err).toMatchObject({ code: "s3_not_found", ids: { bucket, key: "no/such/key.pdf" } });
    expect(await readdir(join(dir, "missing"))).toEqual([]);
  });

  it("reads a small object into memory, byte for byte, and spills one over the limit to a file", async () => {
    const body = randomBytes(70_000);
    await uploadFile(s3, bucket, "pages/2.pdf", body, "application/pdf");
    const spillTo = () => Promise.resolve(join(dir, "spilled", "2.pdf"));
    const inMemory = await download(s3, bucket, "pages/2.pdf", { inMemoryMaxBytes: 70_000, spillTo });
    expect(inMemory).toEqual({ bytes: new Uint8Array(body), size: 70_000 });
    // It owns its buffer, so it can be moved to a worker thread.
    if (!("bytes" in inMemory)) throw new Error("expected bytes");
    expect(inMemory.bytes.buffer.byteLength).toBe(70_000);

    const spilled = await download(s3, bucket, "pages/2.pdf", { inMemoryMaxBytes: 69_999, spillTo });
    expect(spilled).toEqual({ path: join(dir, "spilled", "2.pdf"), size: 70_000 });
    expect(await readFile(join(dir, "spilled", "2.pdf"))).toEqual(body);

    const err = await download(s3, bucket, "no/such/key.pdf", { inMemoryMaxBytes: 1_000, spillTo }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(S3ObjectNotFoundError);
  });
});
