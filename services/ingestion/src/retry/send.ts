import type { SQSClient } from "@aws-sdk/client-sqs";
import { objectCreatedEvent, QueueProducer, QueueSender, type Logger, type QueueUrls } from "@docpipe/queue";
import type { Plan } from "./plan.js";

/** The producers a retry sends through: whole documents to ingest, pages to render or to score. */
export interface RetryProducers {
  ingest: QueueProducer<"ingest">;
  singlePage: QueueProducer<"singlePage"> | undefined;
  /** S3 notifications are S3's format, not a catalog message: sent as bodies. */
  convertedImage: QueueSender | undefined;
}

export function retryProducers(
  sqs: SQSClient,
  queueUrls: { ingest: QueueUrls; singlePage?: QueueUrls; convertedImage?: QueueUrls },
  logger: Logger,
): RetryProducers {
  const { singlePage, convertedImage } = queueUrls;
  return {
    ingest: new QueueProducer({ sqs, queueUrl: queueUrls.ingest.url, queue: "ingest", logger }),
    singlePage: singlePage && new QueueProducer({ sqs, queueUrl: singlePage.url, queue: "singlePage", logger }),
    convertedImage: convertedImage && new QueueSender({ sqs, queueUrl: convertedImage.url, queueName: "converted-image", logger }),
  };
}

/**
 * Sends the claimed retries: an ingest message per whole document, a single-page message per
 * page to render, and per page to score an S3 notification of its PNG (the inference client
 * cannot tell it from S3's own). Plans only ask for a queue the producers have.
 */
export async function sendRetries(
  producers: RetryProducers,
  claimed: Plan[],
  target: { batchId: string; workBucket: string | undefined; region: string },
): Promise<void> {
  const { batchId } = target;
  const pages = claimed.flatMap((p) => (p.mode === "pages" ? [p] : []));
  await producers.ingest.send(
    claimed.flatMap((p) => (p.mode === "document" ? [{ version: 1 as const, batchId, documentId: p.doc.id, bucket: p.doc.bucket, key: p.doc.key }] : [])),
  );
  const convert = pages.flatMap((p) => p.convert);
  if (convert.length > 0) {
    await producers.singlePage!.send(
      convert.map((x) => ({ version: 1 as const, batchId, documentId: x.documentId, bucket: x.pdfBucket, key: x.pdfKey, pageNumber: x.pageNumber })),
    );
  }
  const infer = pages.flatMap((p) => p.infer);
  if (infer.length > 0) {
    await producers.convertedImage!.sendBodies(infer.map((x) => objectCreatedEvent(target.workBucket!, x.imageKey, target.region, "docpipe-retry-failed")));
  }
}
