import { GetQueueUrlCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { dlqName, queues, type QueueKey } from "./contracts.js";
import { QueueNotFoundError } from "./errors.js";

export interface QueueUrls {
  url: string;
  dlqUrl: string;
}

/** The deployed name of a catalog queue: `${prefix}${spec.name}`. */
export const queueName = (key: QueueKey, prefix = ""): string => `${prefix}${queues[key].name}`;

/** The deployed name of a catalog queue's dead-letter queue: `${prefix}${spec.name}-dlq`. */
export const deadLetterQueueName = (key: QueueKey, prefix = ""): string => `${prefix}${dlqName(queues[key])}`;

async function urlOf(sqs: SQSClient, name: string): Promise<string> {
  try {
    const out = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
    if (!out.QueueUrl) throw new Error("GetQueueUrl returned no QueueUrl");
    return out.QueueUrl;
  } catch (e) {
    throw new QueueNotFoundError("queue_not_found", `cannot resolve the URL of queue "${name}"; is it deployed with this prefix?`, {
      cause: e,
    });
  }
}

/** Looks up the URL of every catalog queue and its DLQ. Fails with {@link QueueNotFoundError} naming the first missing one. */
export async function resolveQueueUrls(sqs: SQSClient, prefix = ""): Promise<Record<QueueKey, QueueUrls>> {
  const keys = Object.keys(queues) as QueueKey[];
  const entries = await Promise.all(
    keys.map(async (key) => {
      const [url, dlqUrl] = await Promise.all([urlOf(sqs, queueName(key, prefix)), urlOf(sqs, deadLetterQueueName(key, prefix))]);
      return [key, { url, dlqUrl }] as const;
    }),
  );
  return Object.fromEntries(entries) as Record<QueueKey, QueueUrls>;
}

/**
 * What a worker needs to know of the catalog queue it consumes: its URLs, and its receive count
 * and visibility from the catalog (the visibility overridable, as VISIBILITY_TIMEOUT_SECONDS does).
 */
export function consumedQueue(
  key: QueueKey,
  urls: QueueUrls,
  visibilityTimeoutSeconds?: number,
): { queueUrl: string; dlqUrl: string; maxReceiveCount: number; visibilityTimeoutSeconds: number } {
  return {
    queueUrl: urls.url,
    dlqUrl: urls.dlqUrl,
    maxReceiveCount: queues[key].maxReceiveCount,
    visibilityTimeoutSeconds: visibilityTimeoutSeconds ?? queues[key].visibilityTimeoutSeconds,
  };
}
