import { aws_sqs as sqs, Duration } from "aws-cdk-lib";
import { Construct } from "constructs";
import { dlqName, queues, type QueueKey, type QueueSpec } from "@docpipe/queue";

export interface PipelineQueue {
  readonly key: QueueKey;
  readonly spec: QueueSpec;
  readonly queue: sqs.Queue;
  readonly dlq: sqs.Queue;
}

export interface QueuesProps {
  /** Prefix of every queue name, the same value the services get as QUEUE_PREFIX. */
  readonly prefix: string;
}

/**
 * Every queue of the message catalog (packages/queue/src/contracts.ts) with its dead-letter
 * queue. Names, visibility timeouts and receive counts come from the catalog, so the local
 * stack, the workers and AWS cannot drift apart.
 */
export class Queues extends Construct {
  public readonly byKey: Readonly<Record<QueueKey, PipelineQueue>>;
  public readonly all: readonly PipelineQueue[];

  constructor(scope: Construct, id: string, props: QueuesProps) {
    super(scope, id);
    const entries = (Object.keys(queues) as QueueKey[]).map((key): [QueueKey, PipelineQueue] => {
      const spec: QueueSpec = queues[key];
      const dlq = new sqs.Queue(this, `${key}-dlq`, {
        queueName: `${props.prefix}${dlqName(spec)}`,
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        // SQS keeps a message's original enqueue time when it moves it to the DLQ, so the
        // DLQ keeps messages longer than the source queue does.
        retentionPeriod: Duration.days(14),
      });
      const queue = new sqs.Queue(this, key, {
        queueName: `${props.prefix}${spec.name}`,
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        visibilityTimeout: Duration.seconds(spec.visibilityTimeoutSeconds),
        retentionPeriod: Duration.days(7),
        // Long polling by default, so idle workers do not pay for empty receives.
        receiveMessageWaitTime: Duration.seconds(20),
        deadLetterQueue: { queue: dlq, maxReceiveCount: spec.maxReceiveCount },
      });
      return [key, { key, spec, queue, dlq }];
    });
    this.byKey = Object.fromEntries(entries) as Record<QueueKey, PipelineQueue>;
    this.all = entries.map(([, q]) => q);
  }
}
