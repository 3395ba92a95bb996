// Stuck-work detection: a batch with no audit event for STALL_AFTER_SECONDS while unfinished is
// reported as stalled, with the stage where most of its unfinished documents wait, in its
// status and its report; progress clears it, and a completed batch is never stalled.
import { generatePdf, PAGE_SIZES } from "@docpipe/pdf";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { countStalledBatches } from "@docpipe/ingestion";
import { execute, EXIT } from "@docpipe/cli";
import { captureOut } from "../e2e/support.js";
import { expect, onTestFinished, test } from "../fixtures/index.js";
import { waitFor, waitForBatch } from "../fixtures/wait.js";
import { ensureBucket, putFile, startApi, startWorkers, withServices } from "./support.js";

const BUCKET = "operator-stall";
const STALL_AFTER_SECONDS = 2;
const [W, H] = PAGE_SIZES.letter;
const letter = { widthPt: W, heightPt: H, rotate: 0 as const, content: "text" as const };

test("an idle batch is stalled at the stage holding most of its documents, until work moves it on", async ({ stack, prisma }) =>
  withServices(async (own) => {
    const dir = await mkdtemp(join(tmpdir(), "docpipe-stall-"));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    await ensureBucket(stack.s3, BUCKET);
    const prefix = "stall/";
    await generatePdf(join(dir, "single.pdf"), [letter]);
    await generatePdf(join(dir, "three.pdf"), [letter, letter, letter]);
    // Two single-page documents and one of three pages: after classification, two wait for the converter.
    await putFile(stack.s3, BUCKET, `${prefix}a.pdf`, join(dir, "single.pdf"));
    await putFile(stack.s3, BUCKET, `${prefix}b.pdf`, join(dir, "single.pdf"));
    await putFile(stack.s3, BUCKET, `${prefix}c.pdf`, join(dir, "three.pdf"));

    const app = own(await startApi(stack, prisma, { stallAfterSeconds: STALL_AFTER_SECONDS }));
    const { batchId } = await app.api.submit({ bucket: BUCKET, prefixes: [prefix] });
    const listed = await waitFor("the listing", async () => {
      const s = await app.api.status(batchId);
      return s.state === "processing" ? s : undefined;
    });
    // Just listed: the last audit event is fresh.
    expect(listed.stalled).toBeNull();

    // No worker runs: nothing happens, and after the threshold every document waits to be classified.
    const idle = await waitFor("the batch to be reported stalled", async () => {
      const s = await app.api.status(batchId);
      return s.stalled ? s : undefined;
    });
    const lastEvent = await prisma.auditEvent.findFirstOrThrow({ where: { batchId }, orderBy: { createdAt: "desc" } });
    expect(idle.stalled).toEqual({ since: lastEvent.createdAt.toISOString(), stage: "classify", documents: 3, lastStage: "ingestion" });
    expect(Date.now() - lastEvent.createdAt.getTime()).toBeGreaterThanOrEqual(STALL_AFTER_SECONDS * 1000);
    const report = await app.api.report(batchId);
    expect(report.stalled).toMatchObject({ stage: "classify", documents: 3 });
    // ...and the StalledBatches metric counts it.
    expect(await countStalledBatches(prisma, STALL_AFTER_SECONDS * 1000)).toBe(1);
    // `docpipe status` stops waiting on a stalled batch, says so, and exits with its own code.
    const out = captureOut();
    const err = captureOut();
    const env = { DOCPIPE_API_URL: app.url, DOCPIPE_API_KEY: app.key };
    expect(await execute(["status", batchId], { stdout: out.out, stderr: err.out, env })).toBe(EXIT.stalled);
    expect(out.text()).toContain("STALLED since");
    expect(err.text()).toMatch(/is stalled: nothing has happened to it since .* \(at stage classify\)/);

    // The orchestrator alone: documents move (no longer stalled), then wait for the converter and the small splitter.
    const orchestrator = own(await startWorkers(stack, prisma, ["orchestrator"]));
    await waitFor("the documents to be classified", async () => ((await app.api.status(batchId)).documents.queued === 0 ? true : undefined));
    expect((await app.api.status(batchId)).stalled).toBeNull();
    await orchestrator.stop();
    const atConvert = await waitFor("the batch to stall again", async () => (await app.api.status(batchId)).stalled ?? undefined);
    expect(atConvert).toMatchObject({ stage: "convert", documents: 2, lastStage: "classify" });

    // With every worker the batch completes, and a completed batch is not stalled however long it sits.
    own(await startWorkers(stack, prisma));
    const done = await waitForBatch(app.api, batchId);
    expect(done.state).toBe("completed");
    await new Promise((r) => setTimeout(r, STALL_AFTER_SECONDS * 1000 + 200));
    expect((await app.api.status(batchId)).stalled).toBeNull();
    expect((await app.api.report(batchId)).stalled).toBeNull();
    expect(await countStalledBatches(prisma, STALL_AFTER_SECONDS * 1000)).toBe(0);
  }));
