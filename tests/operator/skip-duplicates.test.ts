// skipAlreadyProcessed: a document whose content (SHA-256, computed while the orchestrator or
// the large splitter downloads it) matches a document done in an earlier batch ends done
// without pages of its own; changed content is processed; without the option nothing is skipped.
// Content is claimed by its hash, so two batches with the same file at once process it once.
import { generatePdf, PAGE_SIZES } from "@docpipe/pdf";
import { completeDocumentIfFinished, failDocument } from "@docpipe/queue";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, onTestFinished, test } from "../fixtures/index.js";
import { waitForBatch } from "../fixtures/wait.js";
import { ensureBucket, putFile, startApi, startWorkers, withServices } from "./support.js";

const BUCKET = "operator-skip";
const [W, H] = PAGE_SIZES.letter;
const page = (content: "text" | "image") => ({ widthPt: W, heightPt: H, rotate: 0 as const, content });
const sha256 = async (path: string) => createHash("sha256").update(await readFile(path)).digest("hex");

test("a document done in an earlier batch is skipped when the batch asks for it; a changed one is processed", async ({ stack, prisma }) =>
  withServices(async (own) => {
    const dir = await mkdtemp(join(tmpdir(), "docpipe-skip-"));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    await ensureBucket(stack.s3, BUCKET);
    const three = join(dir, "three.pdf");
    const changed = join(dir, "changed.pdf");
    const big = join(dir, "big.pdf");
    await generatePdf(three, [page("text"), page("image"), page("text")]);
    await generatePdf(changed, [page("text"), page("image"), page("image")]);
    await generatePdf(big, [page("image"), page("image"), page("image"), page("image")]);
    // The orchestrator's size limit sits just under big.pdf: the large splitter is the one that downloads (and hashes) it.
    const largeSizeBytes = (await stat(big)).size - 1;
    expect((await stat(three)).size).toBeLessThan(largeSizeBytes);
    expect((await stat(changed)).size).toBeLessThan(largeSizeBytes);

    const app = own(await startApi(stack, prisma));
    own(await startWorkers(stack, prisma, undefined, { largeSizeBytes }));

    // Batch 1 processes everything; every document gets the hash of its bytes.
    await putFile(stack.s3, BUCKET, "first/three.pdf", three);
    await putFile(stack.s3, BUCKET, "first/big.pdf", big);
    const first = await app.api.submit({ bucket: BUCKET, prefixes: ["first/"] });
    expect(await waitForBatch(app.api, first.batchId)).toMatchObject({ state: "completed", documents: { done: 2, failed: 0 } });
    const originals = await prisma.document.findMany({ where: { batchId: first.batchId }, orderBy: { key: "asc" } });
    expect(originals.map((d) => [d.key, d.class, d.contentHash])).toEqual([
      ["first/big.pdf", "large", await sha256(big)],
      ["first/three.pdf", "small", await sha256(three)],
    ]);
    const [bigOriginal, threeOriginal] = originals as [(typeof originals)[0], (typeof originals)[0]];

    // Batch 2 asks to skip: the same bytes under other keys are skipped, the changed file is processed.
    await putFile(stack.s3, BUCKET, "second/copy-of-three.pdf", three);
    await putFile(stack.s3, BUCKET, "second/copy-of-big.pdf", big);
    await putFile(stack.s3, BUCKET, "second/changed.pdf", changed);
    const second = await app.api.submit({ bucket: BUCKET, prefixes: ["second/"], skipAlreadyProcessed: true });
    expect(await waitForBatch(app.api, second.batchId)).toMatchObject({ state: "completed", documents: { done: 3, failed: 0 } });
    const docs = await prisma.document.findMany({
      where: { batchId: second.batchId },
      include: { _count: { select: { pages: true, results: true } }, auditEvents: { orderBy: { id: "asc" } } },
      orderBy: { key: "asc" },
    });
    const [changedDoc, bigCopy, threeCopy] = docs as [(typeof docs)[0], (typeof docs)[0], (typeof docs)[0]];
    expect(changedDoc).toMatchObject({ key: "second/changed.pdf", state: "done", duplicateOfId: null, contentHash: await sha256(changed), _count: { pages: 3, results: 3 } });
    expect(threeCopy).toMatchObject({ state: "done", duplicateOfId: threeOriginal.id, contentHash: threeOriginal.contentHash, _count: { pages: 0, results: 0 } });
    expect(bigCopy).toMatchObject({ state: "done", duplicateOfId: bigOriginal.id, contentHash: bigOriginal.contentHash, _count: { pages: 0, results: 0 } });
    // Each skip is on the trail of the stage that hashed the file, naming the document and batch it stands for.
    expect(threeCopy.auditEvents.find((e) => e.outcome === "skipped")).toMatchObject({
      stage: "classify",
      details: { duplicateOf: threeOriginal.id, batchId: first.batchId },
    });
    expect(bigCopy.auditEvents.find((e) => e.outcome === "skipped")).toMatchObject({
      stage: "split-large",
      details: { duplicateOf: bigOriginal.id, batchId: first.batchId },
    });
    expect(bigCopy.auditEvents.some((e) => e.stage === "split-small" || e.stage === "convert")).toBe(false);

    const report = await app.api.report(second.batchId);
    expect(report.documents).toMatchObject({ total: 3, done: 3, failed: 0, inProgress: 0, skippedDuplicates: 2 });
    expect(report.pages).toMatchObject({ total: 3, withResults: 3 });
    const perFeature = report.features.map((f) => f.documentsWith + f.documentsWithout);
    expect(perFeature.every((n) => n === 1)).toBe(true);

    // Batch 3 does not ask: the same bytes are processed again.
    await putFile(stack.s3, BUCKET, "third/three.pdf", three);
    const third = await app.api.submit({ bucket: BUCKET, prefixes: ["third/"] });
    expect(await waitForBatch(app.api, third.batchId)).toMatchObject({ state: "completed", documents: { done: 1 } });
    const again = await prisma.document.findFirstOrThrow({ where: { batchId: third.batchId }, include: { _count: { select: { results: true } } } });
    expect(again).toMatchObject({ duplicateOfId: null, contentHash: threeOriginal.contentHash, _count: { results: 3 } });
  }));

test("two skipping batches with the same content at the same time: each content is processed once, and the copies end with it", async ({ stack, prisma }) =>
  withServices(async (own) => {
    const dir = await mkdtemp(join(tmpdir(), "docpipe-skip-race-"));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    await ensureBucket(stack.s3, BUCKET);
    const files = { "one.pdf": [page("text")], "three.pdf": [page("text"), page("image"), page("text")], "four.pdf": [page("image"), page("text"), page("image"), page("text")] };
    for (const [name, pages] of Object.entries(files)) {
      await generatePdf(join(dir, name), pages);
      for (const prefix of ["left/", "right/"]) await putFile(stack.s3, BUCKET, `${prefix}${name}`, join(dir, name));
    }
    const app = own(await startApi(stack, prisma));
    // Both batches listed before any worker runs, so their copies are classified side by side.
    const [left, right] = await Promise.all(["left/", "right/"].map((p) => app.api.submit({ bucket: BUCKET, prefixes: [p], skipAlreadyProcessed: true })));
    for (const b of [left!, right!]) {
      for (let i = 0; (await prisma.document.count({ where: { batchId: b.batchId } })) < 3; i++) {
        if (i > 300) throw new Error("the batches were not listed");
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    own(await startWorkers(stack, prisma));
    for (const b of [left!, right!]) expect(await waitForBatch(app.api, b.batchId)).toMatchObject({ state: "completed", documents: { done: 3, failed: 0 } });

    const docs = await prisma.document.findMany({ include: { _count: { select: { pages: true } } } });
    const byContent = new Map<string | null, typeof docs>();
    for (const d of docs) byContent.set(d.contentHash, [...(byContent.get(d.contentHash) ?? []), d]);
    expect(byContent.size).toBe(3);
    for (const [, copies] of byContent) {
      // One copy processed (its pages), the other standing for it, whichever batch each came from.
      const processed = copies.filter((d) => d.duplicateOfId === null);
      expect(processed).toHaveLength(1);
      expect(copies.find((d) => d.duplicateOfId !== null)).toMatchObject({ duplicateOfId: processed[0]!.id, state: "done", _count: { pages: 0 } });
    }
    // Rendered once per page of one copy of each file.
    expect(await prisma.auditEvent.count({ where: { stage: "convert", outcome: "started" } })).toBe(8);
  }));

test("a copy waiting for its content's document ends as it ends: done, or failed with its reason", async ({ prisma }) => {
  const batch = (owner: string) => prisma.batch.create({ data: { bucket: BUCKET, prefixes: ["x/"], state: "processing", owner, options: { skipAlreadyProcessed: true } } });
  const [first, second] = [await batch("o"), await batch("o")];
  const holder = (key: string, data: object = {}) => prisma.document.create({ data: { batchId: first.id, bucket: BUCKET, key, state: "inferring", pageCount: 1, ...data } });
  const copy = (key: string, duplicateOfId: string) => prisma.document.create({ data: { batchId: second.id, bucket: BUCKET, key, state: "classified", duplicateOfId } });
  const good = await holder("x/good.pdf");
  const bad = await holder("x/bad.pdf");
  const goodCopy = await copy("x/good-copy.pdf", good.id);
  const badCopy = await copy("x/bad-copy.pdf", bad.id);

  await prisma.page.create({ data: { documentId: good.id, pageNumber: 1, state: "done" } });
  expect(await completeDocumentIfFinished(prisma, { batchId: first.id, documentId: good.id })).toBe(true);
  expect(await prisma.document.findUniqueOrThrow({ where: { id: goodCopy.id } })).toMatchObject({ state: "done", failureCode: null });

  await failDocument(prisma, { batchId: first.id, documentId: bad.id }, { code: "corrupt", reason: "the file is damaged beyond repair" });
  expect(await prisma.document.findUniqueOrThrow({ where: { id: badCopy.id } })).toMatchObject({
    state: "failed",
    failureCode: "duplicate_of_failed",
    failureReason: `same content as document ${bad.id}, which failed: the file is damaged beyond repair`,
  });
  expect(await prisma.batch.findUniqueOrThrow({ where: { id: second.id } })).toMatchObject({ state: "completed" });
});
