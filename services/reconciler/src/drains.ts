import { GetQueueAttributesCommand, type QueueAttributeName, type SQSClient } from "@aws-sdk/client-sqs";
import type { PrismaClient } from "@docpipe/db";
import { RECONCILED_QUEUES, type QueueUrls, type ReconciledQueue } from "@docpipe/queue";

/** What one look at a queue and its DLQ found. */
export interface Look {
  /** Visible, in flight and delayed messages of the queue and of its DLQ, all together. */
  messages: number;
  /** The later CreatedTimestamp of the two: neither holds a message sent before it. */
  createdAt: Date;
}

async function attributes(sqs: SQSClient, url: string): Promise<{ messages: number; createdAt: Date }> {
  const { Attributes: a = {} } = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: url,
      AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed", "CreatedTimestamp"],
    }),
  );
  const n = (name: QueueAttributeName) => Number(a[name] ?? 0) || 0;
  return {
    messages: n("ApproximateNumberOfMessages") + n("ApproximateNumberOfMessagesNotVisible") + n("ApproximateNumberOfMessagesDelayed"),
    // Seconds, rounded down by SQS: earlier than the truth, which is the safe side.
    createdAt: new Date(n("CreatedTimestamp") * 1000),
  };
}

/**
 * Looks at a queue, then at its DLQ. In that order: a message that SQS moves between the two
 * looks was in the queue at the first one, so one of them sees it.
 */
export async function look(sqs: SQSClient, urls: QueueUrls): Promise<Look> {
  const main = await attributes(sqs, urls.url);
  const dlq = await attributes(sqs, urls.dlqUrl);
  return {
    messages: main.messages + dlq.messages,
    createdAt: new Date(Math.max(main.createdAt.getTime(), dlq.createdAt.getTime())),
  };
}

/**
 * The drain mark of each queue: a time before which no message sent to the queue is left in it
 * or in its DLQ, so a unit whose next message goes there, and that nothing has touched since
 * before then, has lost its message.
 *
 * Two facts give one:
 * - the queue was empty (visible, in flight and delayed, and its DLQ too) on every look from
 *   `emptySince` to a look at least `settle` later. SQS's counts are approximate and settle
 *   within about a minute: a message sent before `emptySince` that was still there at the last
 *   look would have been counted. Any non-empty look starts the run again.
 * - the queue (or its DLQ) was created after: a restarted local stack's queues are new, so
 *   everything sent to the old ones is gone.
 *
 * The runs are kept in `QueueDrain`, so a reconciler that runs once every few minutes (a
 * scheduled task) builds them across runs. `now` is the database's clock, read before the
 * looks, as are the rows' `updatedAt` it is compared with; `skewMs` is taken off for the clocks
 * of SQS and of the workers.
 */
export async function drainMarks(opts: {
  prisma: PrismaClient;
  sqs: SQSClient;
  queueUrls: Record<ReconciledQueue, QueueUrls>;
  settleMs: number;
  skewMs: number;
}): Promise<Record<ReconciledQueue, Date | null>> {
  const { prisma, sqs, queueUrls, settleMs, skewMs } = opts;
  const [{ now }] = await prisma.$queryRaw<[{ now: Date }]>`SELECT now() AS now`;
  const marks = await Promise.all(
    RECONCILED_QUEUES.map(async (queue) => {
      const seen = await look(sqs, queueUrls[queue]);
      const before = await prisma.queueDrain.findUnique({ where: { queue } });
      const emptySince = seen.messages > 0 ? null : (before?.emptySince ?? now);
      await prisma.queueDrain.upsert({
        where: { queue },
        create: { queue, emptySince, observedAt: now, createdAt: seen.createdAt },
        update: { emptySince, observedAt: now, createdAt: seen.createdAt },
      });
      const drained = emptySince && now.getTime() - emptySince.getTime() >= settleMs ? emptySince.getTime() : -Infinity;
      const mark = Math.max(drained, seen.createdAt.getTime()) - skewMs;
      return [queue, Number.isFinite(mark) && mark > 0 ? new Date(mark) : null] as const;
    }),
  );
  return Object.fromEntries(marks) as Record<ReconciledQueue, Date | null>;
}
