import { SQSClient } from "@aws-sdk/client-sqs";
import { queueKeyOf, redrive, type RedriveResult } from "@docpipe/failsafe";
import { queues, resolveQueueUrls, type QueueKey } from "@docpipe/queue";

export class RedriveUsageError extends Error {
  override readonly name = "RedriveUsageError";
}

function keyOf(name: string): QueueKey {
  const key = queueKeyOf(name);
  if (!key) {
    throw new RedriveUsageError(`unknown queue "${name}"; one of: ${Object.values(queues).map((q) => q.name).join(", ")}`);
  }
  return key;
}

/**
 * `docpipe redrive <queue> [--to <queue>]` against the queues named by the environment
 * (AWS_REGION, AWS_ENDPOINT_URL_SQS, QUEUE_PREFIX), as the services reach them.
 */
export async function redriveCommand(
  queue: string,
  to: string | undefined,
  env: Record<string, string | undefined>,
): Promise<RedriveResult> {
  const from = keyOf(queue);
  const dest = to === undefined ? undefined : keyOf(to);
  if (from === "parked" && (dest === undefined || dest === "parked")) {
    throw new RedriveUsageError("the parked queue has no source of its own: name one with --to <queue>");
  }
  const sqs = new SQSClient({
    region: env.AWS_REGION ?? "us-east-1",
    ...(env.AWS_ENDPOINT_URL_SQS && { endpoint: env.AWS_ENDPOINT_URL_SQS }),
    // From `env` when it has them (the local stack's); otherwise the SDK's usual chain.
    ...(env.AWS_ACCESS_KEY_ID &&
      env.AWS_SECRET_ACCESS_KEY && {
        credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
      }),
  });
  try {
    const queueUrls = await resolveQueueUrls(sqs, env.QUEUE_PREFIX ?? "");
    return await redrive(sqs, queueUrls, { from, ...(dest && { to: dest }) });
  } finally {
    sqs.destroy();
  }
}
