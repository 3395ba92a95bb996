import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  CopyObjectCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { silentLogger } from "@docpipe/queue";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { S3RVER_CREDENTIALS, S3Server } from "./s3.js";

// The patched s3rver keeps an object as two files (its bytes, and its metadata with its ETag,
// last-modified time and tags): what the real SDK reads back must be S3's answers, after a
// restart too, and objects stored by the unpatched layout must still read.
const bucket = "store";
let dir: string;
let server: S3Server;
let s3: S3Client;

async function startServer(): Promise<void> {
  server = new S3Server({ directory: dir, port: 0, buckets: [bucket], logger: silentLogger() });
  await server.start();
  s3?.destroy();
  s3 = new S3Client({ region: "us-east-1", endpoint: server.endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS });
}

const md5 = (b: Uint8Array) => `"${createHash("md5").update(b).digest("hex")}"`;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "s3-store-"));
  await startServer();
});

afterAll(async () => {
  s3?.destroy();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("the S3 stand-in's store", () => {
  const body = randomBytes(200_000);
  const key = "batches/b/documents/d/pages/1.pdf";

  it("answers a tagged PutObject with the MD5 ETag, and reads back bytes, ranges, headers and tags", async () => {
    const put = await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: "application/pdf", Metadata: { origin: "test" }, Tagging: "docpipe=page" }),
    );
    expect(put.ETag).toBe(md5(body));
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);
    expect(got).toMatchObject({ ETag: md5(body), ContentType: "application/pdf", ContentLength: body.length, Metadata: { origin: "test" } });
    const range = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: "bytes=10-19" }));
    expect(Buffer.from(await range.Body!.transformToByteArray()).equals(body.subarray(10, 20))).toBe(true);
    const tags = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: key }));
    expect(tags.TagSet).toEqual([{ Key: "docpipe", Value: "page" }]);
    // two files: the object and its metadata (no .md5 file, no tagging file)
    expect((await readdir(path.join(dir, bucket, "batches/b/documents/d/pages"))).sort()).toEqual([
      "1.pdf._S3rver_metadata.json",
      "1.pdf._S3rver_object",
    ]);
  });

  it("replaces tags, and copies an object with its ETag", async () => {
    await s3.send(new PutObjectTaggingCommand({ Bucket: bucket, Key: key, Tagging: { TagSet: [{ Key: "k", Value: "v" }] } }));
    expect((await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: key }))).TagSet).toEqual([{ Key: "k", Value: "v" }]);
    await s3.send(new PutObjectTaggingCommand({ Bucket: bucket, Key: key, Tagging: { TagSet: [] } }));
    expect((await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: key }))).TagSet ?? []).toEqual([]);

    const copy = await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: "copies/1.pdf", CopySource: `${bucket}/${key}` }));
    expect(copy.CopyObjectResult?.ETag).toBe(md5(body));
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "copies/1.pdf" }));
    expect(head).toMatchObject({ ETag: md5(body), ContentType: "application/pdf", ContentLength: body.length });
    await s3.send(
      new CopyObjectCommand({ Bucket: bucket, Key: key, CopySource: `${bucket}/${key}`, MetadataDirective: "REPLACE", ContentType: "application/x-pdf" }),
    );
    expect(await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).toMatchObject({ ETag: md5(body), ContentType: "application/x-pdf" });
  });

  it("reads every object back the same after a restart, those of the unpatched layout included", async () => {
    const tagged = "restart/tagged.png";
    const png = randomBytes(70_000);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: tagged, Body: png, ContentType: "image/png", Tagging: "a=b" }));
    const before = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: tagged }));

    // As s3rver 3.7 stored an object: bytes, `.md5` and a metadata file without the ETag.
    const old = randomBytes(1000);
    const oldDir = path.join(dir, bucket, "old");
    await mkdir(oldDir, { recursive: true });
    await writeFile(path.join(oldDir, "1.pdf._S3rver_object"), old);
    await writeFile(path.join(oldDir, "1.pdf._S3rver_object.md5"), createHash("md5").update(old).digest("hex"));
    await writeFile(path.join(oldDir, "1.pdf._S3rver_metadata.json"), JSON.stringify({ "content-type": "application/pdf" }, null, 2));
    await writeFile(path.join(oldDir, "1.pdf._S3rver_tagging.xml"), "<Tagging><TagSet><Tag><Key>x</Key><Value>y</Value></Tag></TagSet></Tagging>");

    await server.stop();
    await startServer();

    const after = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: tagged }));
    expect(Buffer.from(await after.Body!.transformToByteArray()).equals(png)).toBe(true);
    expect(after).toMatchObject({ ETag: before.ETag, ContentType: "image/png", LastModified: before.LastModified, ContentLength: png.length });
    expect((await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: tagged }))).TagSet).toEqual([{ Key: "a", Value: "b" }]);

    const oldGot = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "old/1.pdf" }));
    expect(Buffer.from(await oldGot.Body!.transformToByteArray()).equals(old)).toBe(true);
    expect(oldGot).toMatchObject({ ETag: md5(old), ContentType: "application/pdf" });
    expect((await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: "old/1.pdf" }))).TagSet).toEqual([{ Key: "x", Value: "y" }]);

    // Stored again, it has the new layout's ETag, not the stale `.md5` file's.
    const fresh = randomBytes(500);
    expect((await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "old/1.pdf", Body: fresh }))).ETag).toBe(md5(fresh));
    await server.stop();
    await startServer();
    expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "old/1.pdf" }))).ETag).toBe(md5(fresh));
  });
});
