import { SendMessageCommand, type Message, type MessageAttributeValue, type SQSClient } from "@aws-sdk/client-sqs";

/** Why a message went to its DLQ by the worker's hand (a redrive by SQS carries none of these). */
export type DeadLetterReason = "poison" | "permanent" | "retries_exhausted";

/**
 * Message attributes the worker puts on a message it moves to a DLQ. The failsafe reads them
 * back with {@link readDeadLetterInfo}; receive with `MessageAttributeNames: ["All"]` to get them.
 */
export const deadLetterAttributes = {
  reason: "docpipe.dl.reason",
  errorCode: "docpipe.dl.errorCode",
  errorMessage: "docpipe.dl.errorMessage",
  sourceQueueUrl: "docpipe.dl.sourceQueueUrl",
  sourceMessageId: "docpipe.dl.sourceMessageId",
  attempt: "docpipe.dl.attempt",
  workerId: "docpipe.dl.workerId",
} as const;

/** SQS allows 10 message attributes; ours take 7, the rest go to the original message's own. */
const MAX_ATTRIBUTES = 10;
const MAX_ERROR_MESSAGE = 1000;

export interface DeadLetterInfo {
  reason: DeadLetterReason;
  errorCode: string;
  errorMessage: string;
  sourceQueueUrl?: string;
  sourceMessageId?: string;
  attempt?: number;
  workerId?: string;
}

const str = (StringValue: string): MessageAttributeValue => ({ DataType: "String", StringValue });

/**
 * Sends a copy of `message` (same body, its attributes kept where room is left) to `dlqUrl`
 * with attributes saying why. The caller deletes the original once this resolves.
 */
export async function sendToDeadLetterQueue(
  sqs: SQSClient,
  dlqUrl: string,
  message: Message,
  info: DeadLetterInfo,
): Promise<string | undefined> {
  const attrs: Record<string, MessageAttributeValue> = {
    [deadLetterAttributes.reason]: str(info.reason),
    [deadLetterAttributes.errorCode]: str(info.errorCode || "unknown"),
    // SQS rejects empty string attributes.
    [deadLetterAttributes.errorMessage]: str(info.errorMessage.slice(0, MAX_ERROR_MESSAGE) || "-"),
  };
  if (info.sourceQueueUrl) attrs[deadLetterAttributes.sourceQueueUrl] = str(info.sourceQueueUrl);
  if (info.sourceMessageId) attrs[deadLetterAttributes.sourceMessageId] = str(info.sourceMessageId);
  if (info.attempt !== undefined) attrs[deadLetterAttributes.attempt] = { DataType: "Number", StringValue: String(info.attempt) };
  if (info.workerId) attrs[deadLetterAttributes.workerId] = str(info.workerId);
  for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
    if (Object.keys(attrs).length >= MAX_ATTRIBUTES) break;
    if (!(name in attrs)) attrs[name] = { DataType: value.DataType, StringValue: value.StringValue, BinaryValue: value.BinaryValue };
  }
  const out = await sqs.send(
    new SendMessageCommand({ QueueUrl: dlqUrl, MessageBody: message.Body ?? "", MessageAttributes: attrs }),
  );
  return out.MessageId;
}

/** Reads the worker's dead-letter attributes back, or undefined for a message SQS redrove itself. */
export function readDeadLetterInfo(message: Message): DeadLetterInfo | undefined {
  const a = message.MessageAttributes ?? {};
  const get = (name: string): string | undefined => a[name]?.StringValue;
  const reason = get(deadLetterAttributes.reason);
  if (reason !== "poison" && reason !== "permanent" && reason !== "retries_exhausted") return undefined;
  const attempt = get(deadLetterAttributes.attempt);
  const info: DeadLetterInfo = {
    reason,
    errorCode: get(deadLetterAttributes.errorCode) ?? "unknown",
    errorMessage: get(deadLetterAttributes.errorMessage) ?? "",
  };
  const sourceQueueUrl = get(deadLetterAttributes.sourceQueueUrl);
  const sourceMessageId = get(deadLetterAttributes.sourceMessageId);
  const workerId = get(deadLetterAttributes.workerId);
  if (sourceQueueUrl) info.sourceQueueUrl = sourceQueueUrl;
  if (sourceMessageId) info.sourceMessageId = sourceMessageId;
  if (attempt !== undefined && Number.isFinite(Number(attempt))) info.attempt = Number(attempt);
  if (workerId) info.workerId = workerId;
  return info;
}
