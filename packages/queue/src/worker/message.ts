import type { Message } from "@aws-sdk/client-sqs";
import { coerceError, PoisonMessageError } from "../errors.js";

/** SQS ApproximateReceiveCount: 1 on the first delivery, higher on every retry. */
export function receiveCount(m: Message): number {
  return Math.max(1, Number(m.Attributes?.ApproximateReceiveCount ?? 1) || 1);
}

/** A body as its queue's message: not JSON, or not the schema, is a {@link PoisonMessageError}. */
export function decodeBody<T>(body: string, parse: (json: unknown) => T, ids: { queueUrl: string; messageId: string }): T {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (e) {
    throw new PoisonMessageError("invalid_json", "message body is not JSON", { cause: e, ...ids });
  }
  try {
    return parse(json);
  } catch (e) {
    if (e instanceof PoisonMessageError) throw e;
    const err = coerceError(e);
    throw new PoisonMessageError("invalid_message", `message does not match its schema: ${err.message}`, { cause: err, ...ids });
  }
}

/** The ids a message names, bound on the handler's logger. */
export function messageIds(value: unknown): { batchId?: string; documentId?: string; pageNumber?: number } {
  if (typeof value !== "object" || value === null) return {};
  const v = value as Record<string, unknown>;
  return {
    ...(typeof v.batchId === "string" && { batchId: v.batchId }),
    ...(typeof v.documentId === "string" && { documentId: v.documentId }),
    ...(typeof v.pageNumber === "number" && { pageNumber: v.pageNumber }),
  };
}
