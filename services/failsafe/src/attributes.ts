import type { Message, MessageAttributeValue } from "@aws-sdk/client-sqs";
import { deadLetterAttributes, readDeadLetterInfo } from "@docpipe/queue";

/** How many times the failsafe has replayed an image message to its queue; carried on the message. */
export const REPLAYS_ATTRIBUTE = "docpipe.replays";

const DEAD_LETTER_NAMES = new Set<string>(Object.values(deadLetterAttributes));

/** Why a message is in its DLQ, in the words an audit record and a person need. */
export interface DeadLetterCause {
  /** `poison` | `permanent` | `retries_exhausted` from the worker, or `redriven` when SQS moved it (no attributes). */
  reason: "poison" | "permanent" | "retries_exhausted" | "redriven";
  errorCode: string;
  errorMessage: string;
  details: Record<string, string | number>;
}

export function deadLetterCause(message: Message): DeadLetterCause {
  const info = readDeadLetterInfo(message);
  if (!info) {
    return {
      reason: "redriven",
      errorCode: "receive_count_exceeded",
      errorMessage: "SQS moved the message after its maxReceiveCount receives: its workers died, timed out or never answered",
      details: { dlReason: "redriven" },
    };
  }
  const details: Record<string, string | number> = { dlReason: info.reason };
  if (info.sourceQueueUrl) details.sourceQueueUrl = info.sourceQueueUrl;
  if (info.workerId) details.deadLetteredBy = info.workerId;
  if (info.attempt !== undefined) details.deadLetteredOnAttempt = info.attempt;
  return { reason: info.reason, errorCode: info.errorCode, errorMessage: info.errorMessage, details };
}

export function replaysOf(message: Message): number {
  const n = Number(message.MessageAttributes?.[REPLAYS_ATTRIBUTE]?.StringValue ?? 0);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/**
 * The message's own attributes for a resend, without the dead-letter ones (a fresh failure
 * writes its own) and, unless `keepDocpipe`, without any `docpipe.` attribute at all.
 */
export function resendAttributes(message: Message, opts: { keepDocpipe?: boolean } = {}): Record<string, MessageAttributeValue> {
  const out: Record<string, MessageAttributeValue> = {};
  for (const [name, v] of Object.entries(message.MessageAttributes ?? {})) {
    if (DEAD_LETTER_NAMES.has(name)) continue;
    if (!opts.keepDocpipe && name.startsWith("docpipe.")) continue;
    out[name] = {
      DataType: v.DataType,
      ...(v.StringValue !== undefined && { StringValue: v.StringValue }),
      ...(v.BinaryValue !== undefined && { BinaryValue: v.BinaryValue }),
    };
  }
  return out;
}

/** All attributes, kept as they are (for a message parked for a person, who wants to see why). */
export function allAttributes(message: Message): Record<string, MessageAttributeValue> {
  return Object.fromEntries(
    Object.entries(message.MessageAttributes ?? {}).map(([name, v]) => [
      name,
      {
        DataType: v.DataType,
        ...(v.StringValue !== undefined && { StringValue: v.StringValue }),
        ...(v.BinaryValue !== undefined && { BinaryValue: v.BinaryValue }),
      },
    ]),
  );
}
