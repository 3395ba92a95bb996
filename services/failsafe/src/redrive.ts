import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ListMessageMoveTasksCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  StartMessageMoveTaskCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { queues, sleep, TransientError, type QueueKey, type QueueUrls } from "@docpipe/queue";
import { resendAttributes } from "./attributes.js";

export interface RedriveOptions {
  /** The queue whose dead letters move: its DLQ is read. For `parked`, the parked queue itself. */
  from: QueueKey;
  /** Where they go. @defaultValue `from` (a DLQ back to its source); required for `parked` */
  to?: QueueKey;
  /** How often a move task is polled for progress. @defaultValue 1000 */
  pollMs?: number;
  /** Gives up waiting for a move task after this long (it carries on in SQS). @defaultValue 600000 */
  timeoutMs?: number;
}

export interface RedriveResult {
  moved: number;
  sourceUrl: string;
  destinationUrl: string;
  /** `move-task`: SQS StartMessageMoveTask (a DLQ to any queue); `batch`: receive, send, delete (the parked queue, which is no DLQ). */
  method: "move-task" | "batch";
}

export class RedriveError extends TransientError {}

/** Accepts a catalog key (`singlePage`) or a queue's name (`single-page`). */
export function queueKeyOf(name: string): QueueKey | undefined {
  for (const [key, spec] of Object.entries(queues) as [QueueKey, (typeof queues)[QueueKey]][]) {
    if (key === name || spec.name === name) return key;
  }
  return undefined;
}

async function arnOf(sqs: SQSClient, url: string): Promise<string> {
  const out = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }));
  const arn = out.Attributes?.QueueArn;
  if (!arn) throw new RedriveError("queue_arn_missing", `no QueueArn for ${url}`);
  return arn;
}

/**
 * Moves messages from a DLQ back to its source queue (or to `to`). A DLQ uses SQS's own
 * StartMessageMoveTask, with the destination named: messages our workers dead-lettered with
 * SendMessage have no recorded source, so SQS could not work it out. The parked queue is no
 * DLQ on AWS, so its messages are moved with receive, send, delete, ten at a time, dropping
 * the `docpipe.` attributes so a redriven message starts with a fresh replay budget.
 */
export async function redrive(sqs: SQSClient, queueUrls: Record<QueueKey, QueueUrls>, opts: RedriveOptions): Promise<RedriveResult> {
  if (opts.from === "parked") {
    if (!opts.to || opts.to === "parked") throw new RangeError("redriving the parked queue needs a destination queue (--to)");
    return { ...(await moveInBatches(sqs, queueUrls.parked.url, queueUrls[opts.to].url)), method: "batch" };
  }
  const sourceUrl = queueUrls[opts.from].dlqUrl;
  const destinationUrl = queueUrls[opts.to ?? opts.from].url;
  const [sourceArn, destinationArn] = await Promise.all([arnOf(sqs, sourceUrl), arnOf(sqs, destinationUrl)]);
  const started = await sqs.send(new StartMessageMoveTaskCommand({ SourceArn: sourceArn, DestinationArn: destinationArn }));
  const deadline = Date.now() + (opts.timeoutMs ?? 600_000);
  for (;;) {
    await sleep(opts.pollMs ?? 1_000);
    const list = await sqs.send(new ListMessageMoveTasksCommand({ SourceArn: sourceArn, MaxResults: 10 }));
    // Newest first; a finished task no longer shows its handle, so take the newest when ours is not named.
    const task = list.Results?.find((r) => r.TaskHandle === started.TaskHandle) ?? list.Results?.[0];
    if (!task) throw new RedriveError("move_task_missing", `SQS lists no move task for ${sourceArn}`);
    if (task.Status === "FAILED") {
      throw new RedriveError("move_task_failed", `moving ${sourceArn} failed: ${task.FailureReason ?? "no reason given"}`);
    }
    if (task.Status !== "RUNNING" && task.Status !== "CANCELLING") {
      return { moved: Number(task.ApproximateNumberOfMessagesMoved ?? 0), sourceUrl, destinationUrl, method: "move-task" };
    }
    if (Date.now() > deadline) {
      throw new RedriveError("move_task_slow", `the move task is still running after ${opts.timeoutMs ?? 600_000} ms; it carries on in SQS`);
    }
  }
}

async function moveInBatches(sqs: SQSClient, sourceUrl: string, destinationUrl: string): Promise<Omit<RedriveResult, "method">> {
  let moved = 0;
  for (;;) {
    const { Messages: batch = [] } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: sourceUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60, MessageAttributeNames: ["All"] }),
    );
    if (batch.length === 0) return { moved, sourceUrl, destinationUrl };
    const sent = await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: destinationUrl,
        Entries: batch.map((m, i) => ({ Id: String(i), MessageBody: m.Body ?? "", MessageAttributes: resendAttributes(m) })),
      }),
    );
    // Only what arrived is deleted; the rest reappears in the parked queue after its visibility timeout.
    const ok = (sent.Successful ?? []).map((s) => batch[Number(s.Id)]!);
    if (ok.length > 0) {
      await sqs.send(
        new DeleteMessageBatchCommand({ QueueUrl: sourceUrl, Entries: ok.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }),
      );
    }
    moved += ok.length;
    if ((sent.Failed ?? []).length > 0) {
      throw new RedriveError("send_failed", `moved ${moved}; ${sent.Failed!.length} messages could not be sent to ${destinationUrl}`);
    }
  }
}
