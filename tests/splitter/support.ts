import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import type { PrismaClient } from "@docpipe/db";
import type { LocalStack } from "@docpipe/local-stack";
import { openPdf, type CorpusFile, type CorpusPageSpec } from "@docpipe/pdf";
import { createLogger, QueueProducer } from "@docpipe/queue";
import { createSplitter, type Splitter, type SplitterOptions } from "@docpipe/splitter";
import { afterEach } from "vitest";
import { createDocuments, putObject, TEST_WAIT_TIME_SECONDS } from "../orchestrator/support.js";

const SIZES = [
  { widthPt: 612, heightPt: 792 },
  { widthPt: 595.28, heightPt: 841.89 },
  { widthPt: 288, heightPt: 432 },
];

/** n pages of three sizes, every seventh with an image too; the generator prints "Page N" on each. */
export const corpusPages = (n: number): CorpusPageSpec[] =>
  Array.from({ length: n }, (_, i) => ({ ...SIZES[i % SIZES.length]!, content: i % 7 === 0 ? ("mixed" as const) : ("text" as const) }));

/**
 * Starts splitters on a test's database, each stopped after its test (before the fixture's
 * teardown, which fails a test that leaves a worker polling). Call once, at a file's top level.
 */
export function splitters(): (stack: LocalStack, prisma: PrismaClient, role: "large" | "small", extra?: Partial<SplitterOptions>) => Splitter {
  const running: Splitter[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.stop({ timeoutMs: 10_000 })));
  });
  return (stack, prisma, role, extra = {}) => {
    const s = createSplitter({
      role, sqs: stack.sqs, s3: stack.s3, prisma, queueUrls: stack.queueUrls, workBucket: stack.workBucket,
      waitTimeSeconds: TEST_WAIT_TIME_SECONDS,
      logger: createLogger({ service: `splitter-${role}`, level: "warn" }), ...extra,
    });
    running.push(s);
    s.start();
    return s;
  };
}

/** Uploads a file to the staging bucket and creates its document, classified as the orchestrator leaves it. */
export async function stage(stack: LocalStack, prisma: PrismaClient, key: string, path: string, cls: "large" | "small", pageCount?: number) {
  const size = await putObject(stack.s3, stack.stagingBucket, key, path);
  const { batchId, documents } = await createDocuments(prisma, stack.stagingBucket, [key]);
  const documentId = documents[0]!.id;
  await prisma.document.update({
    where: { id: documentId },
    data: { state: "classified", class: cls, size: BigInt(size), ...(pageCount ? { pageCount } : {}) },
  });
  return { batchId, documentId, bucket: stack.stagingBucket, key, size };
}

export const largeProducer = (stack: LocalStack) => new QueueProducer({ sqs: stack.sqs, queueUrl: stack.queueUrls.large.url, queue: "large" });
export const smallProducer = (stack: LocalStack) => new QueueProducer({ sqs: stack.sqs, queueUrl: stack.queueUrls.small.url, queue: "small" });

/** Downloads a PDF from the work bucket (through `dir`) and returns, per page, its size and the page number it prints. */
export async function readPdf(stack: LocalStack, dir: string, key: string): Promise<{ widthPt: number; heightPt: number; printed: number }[]> {
  const res = await stack.s3.send(new GetObjectCommand({ Bucket: stack.workBucket, Key: key }));
  const path = join(dir, `read-${Math.random().toString(36).slice(2)}.pdf`);
  await writeFile(path, await res.Body!.transformToByteArray());
  const doc = openPdf(path);
  try {
    return Array.from({ length: doc.countPages() }, (_, i) => {
      const page = doc.loadPage(i);
      const [x0, y0, x1, y1] = page.getBounds();
      const printed = Number(/Page (\d+)/.exec(page.toStructuredText("preserve-whitespace").asText())?.[1]);
      return { widthPt: Math.round(x1 - x0), heightPt: Math.round(y1 - y0), printed };
    });
  } finally {
    doc.destroy();
    await rm(path, { force: true });
  }
}

/** Size and printed number page `n` (1-based) of a corpus file has. */
export const original = (f: CorpusFile, n: number) => ({
  widthPt: Math.round(f.pages[n - 1]!.widthPt),
  heightPt: Math.round(f.pages[n - 1]!.heightPt),
  printed: n,
});
