// Files of 2 GiB or more are inspected and split by native mutool (mupdf's WASM build cannot read
// past 2 GiB). Uploading one to s3rver and streaming it back takes about a minute and 2 GiB of
// disk, so the deployed splitter is shown a small file with NATIVE_SPLIT_MIN_BYTES lowered to its
// size: the very code path a 2 GiB file takes, from the large queue to chunks, rows and audit
// records, checked against what the WASM path writes for the same file.
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import type { LocalStack } from "@docpipe/local-stack";
import { generateCorpus, splitRange, type CorpusFile } from "@docpipe/pdf";
import { chunkKey, pageKey, type SinglePageMessage } from "@docpipe/queue";
import { afterAll, beforeAll } from "vitest";
import { describe, expect, test } from "../fixtures/index.js";
import { waitFor } from "../fixtures/wait.js";
import { receiveBodies } from "../orchestrator/support.js";
import { corpusPages, largeProducer, original, readPdf, splitters, stage } from "./support.js";

const PAGES = 25;
const CHUNKS = [
  { first: 1, last: 10 },
  { first: 11, last: 20 },
  { first: 21, last: 25 },
];

/** The program a PDF's header says wrote it ("% Written by MuPDF 1.28.1"), if it says. */
function writer(head: string): string | undefined {
  return /^% Written by (.*)$/m.exec(head.slice(0, 256))?.[1];
}

async function chunkWriter(stack: LocalStack, key: string): Promise<string | undefined> {
  const res = await stack.s3.send(new GetObjectCommand({ Bucket: stack.workBucket, Key: key, Range: "bytes=0-255" }));
  return writer(await res.Body!.transformToString("latin1"));
}

let dir: string;
let file: CorpusFile;
/** What each path's chunks say wrote them: the mupdf.js build in this process, or the mutool binary. */
const writers: { wasm?: string | undefined; mutool?: string | undefined } = {};
const startSplitter = splitters();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docpipe-splitter-native-"));
  file = (await generateCorpus(join(dir, "corpus"), { files: [{ name: "doc.pdf", pages: corpusPages(PAGES) }] })).files[0]!;
  await splitRange(file.path, 1, 1, join(dir, "wasm.pdf"));
  writers.wasm = writer(await readFile(join(dir, "wasm.pdf"), "latin1"));
  execFileSync("mutool", ["merge", "-o", join(dir, "mutool.pdf"), file.path, "1"]);
  writers.mutool = writer(await readFile(join(dir, "mutool.pdf"), "latin1"));
  // Else the chunks could not tell which program wrote them.
  expect(writers.mutool).not.toBe(writers.wasm);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// The same file both ways: at the threshold it is read natively, one byte under it by mupdf (WASM).
describe.each([
  { path: "native mutool", minBytes: (size: number) => size, engine: { engine: "mutool" }, writer: "mutool" as const },
  { path: "mupdf (WASM)", minBytes: (size: number) => size + 1, engine: {}, writer: "wasm" as const },
])("splitter, a large document read by $path", ({ minBytes, engine, writer: by }) => {
  test("is split into chunks and pages of the original's, its audit record naming the engine, its chunks written by it", async ({ stack, prisma }) => {
    // No page count in the message: the orchestrator never opens a file over its size limit.
    const doc = await stage(stack, prisma, "in/doc.pdf", file.path, "large");
    await largeProducer(stack).send([{ version: 1, batchId: doc.batchId, documentId: doc.documentId, bucket: doc.bucket, key: doc.key, size: doc.size }]);
    const tmpDir = await mkdtemp(join(dir, "tmp-"));
    startSplitter(stack, prisma, "large", { tmpDir, nativeMinBytes: minBytes(doc.size) });
    // Chunks are small: the small role reads what mutool wrote with mupdf (WASM), as in production.
    startSplitter(stack, prisma, "small", { tmpDir });

    const pages = await receiveBodies<SinglePageMessage>(stack.sqs, stack.queueUrls.singlePage.url, PAGES, 120_000);
    const numbers = Array.from({ length: PAGES }, (_, i) => i + 1);
    expect(pages.sort((a, b) => a.pageNumber - b.pageNumber)).toEqual(
      numbers.map((n) => ({ version: 1, batchId: doc.batchId, documentId: doc.documentId, bucket: stack.workBucket, key: pageKey(doc, n), pageNumber: n })),
    );
    await waitFor("every chunk split into pages", async () =>
      (await prisma.auditEvent.count({ where: { stage: "split-small", outcome: "succeeded" } })) === CHUNKS.length ? true : undefined);

    const chunks = await prisma.chunk.findMany({ where: { documentId: doc.documentId }, orderBy: { firstPage: "asc" } });
    expect(chunks.map((c) => ({ first: c.firstPage, last: c.lastPage, key: c.key, split: c.splitAt !== null }))).toEqual(
      CHUNKS.map((r) => ({ ...r, key: chunkKey(doc, r.first, r.last), split: true })),
    );
    // Each chunk, and each page cut from it, holds exactly its pages of the original, in order.
    for (const r of CHUNKS) {
      const expected = Array.from({ length: r.last - r.first + 1 }, (_, i) => original(file, r.first + i));
      expect(await readPdf(stack, dir, chunkKey(doc, r.first, r.last))).toEqual(expected);
      expect(await chunkWriter(stack, chunkKey(doc, r.first, r.last))).toBe(writers[by]);
    }
    for (const n of numbers) expect(await readPdf(stack, dir, pageKey(doc, n))).toEqual([original(file, n)]);
    const rows = await prisma.page.findMany({ where: { documentId: doc.documentId }, orderBy: { pageNumber: "asc" } });
    expect(rows.map((p) => [p.pageNumber, p.pdfKey, p.state])).toEqual(numbers.map((n) => [n, pageKey(doc, n), "pending"]));

    // The splitter counted the pages (the orchestrator did not), and says which engine read the file.
    const d = await prisma.document.findUniqueOrThrow({ where: { id: doc.documentId } });
    expect([d.state, d.pageCount, d.splitAt !== null]).toEqual(["converting", PAGES, true]);
    const trail = await prisma.auditEvent.findMany({ where: { documentId: doc.documentId, stage: "split-large" }, orderBy: { id: "asc" } });
    expect(trail.map((e) => [e.outcome, e.attempt])).toEqual([["started", 1], ["succeeded", 1]]);
    expect(trail[1]!.details).toEqual({ pageCount: PAGES, chunks: CHUNKS.length, bytes: doc.size, ...engine });
    // The source, the chunks and the pages were all removed once uploaded.
    expect(await readdir(tmpDir)).toEqual([]);
  });
});
