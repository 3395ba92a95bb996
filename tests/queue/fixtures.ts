import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { CreateQueueCommand, SQSClient, type Message } from "@aws-sdk/client-sqs";
import type { Worker } from "@docpipe/queue";
import { test as base } from "vitest";
import { receiveMessages } from "../orchestrator/support.js";

/**
 * These tests need only SQS, so they start local-aws-sqs alone rather than the whole local
 * stack (no Postgres, no S3): a second per file instead of several. It is a dependency of
 * @docpipe/local-stack, so it is resolved from there.
 */
async function startSqs(): Promise<{ endpoint: string; close: () => Promise<void> }> {
  const require = createRequire(new URL("../../packages/local-stack/package.json", import.meta.url));
  const mod = (await import(pathToFileURL(require.resolve("local-aws-sqs")).href)) as {
    createSqsServer: (opts: { port: number; hostname: string; emulateQueueCreationLifecycle?: boolean }) => Promise<Server>;
  };
  const server = await mod.createSqsServer({ port: 0, hostname: "127.0.0.1", emulateQueueCreationLifecycle: false });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // A long poll still open would hold close() for its full wait.
      server.closeAllConnections();
      await closed;
    },
  };
}

export interface TestQueue {
  url: string;
  dlqUrl: string;
}

let queueSeq = 0;

interface TestFixtures {
  sqs: SQSClient;
  /** A fresh queue and DLQ per call, so tests never see each other's messages. */
  createQueue: (opts?: { visibilityTimeoutSeconds?: number }) => Promise<TestQueue>;
  /** Registers a worker; the test fails if it is still running at the end. */
  track: (worker: Worker) => Worker;
}

export const test = base.extend<TestFixtures & { sqsEndpoint: string }>({
  sqsEndpoint: [
    // eslint-disable-next-line no-empty-pattern
    async ({}, use) => {
      const sqs = await startSqs();
      await use(sqs.endpoint);
      await sqs.close();
    },
    { scope: "file" },
  ],
  sqs: async ({ sqsEndpoint }, use) => {
    const sqs = new SQSClient({
      region: "us-east-1",
      endpoint: sqsEndpoint,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    await use(sqs);
    sqs.destroy();
  },
  createQueue: async ({ sqs }, use) => {
    await use(async (opts) => {
      const name = `q${process.pid}-${++queueSeq}`;
      const dlq = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }));
      const q = await sqs.send(
        new CreateQueueCommand({
          QueueName: name,
          Attributes: { VisibilityTimeout: String(opts?.visibilityTimeoutSeconds ?? 30) },
        }),
      );
      return { url: q.QueueUrl!, dlqUrl: dlq.QueueUrl! };
    });
  },
  track: async ({ task: _task }, use) => {
    const workers: Worker[] = [];
    await use((w) => {
      workers.push(w);
      return w;
    });
    const left = workers.filter((w) => w.running);
    await Promise.all(left.map((w) => w.stop({ timeoutMs: 1_000 })));
    if (left.length > 0) throw new Error(`${left.length} worker(s) were left running by the test`);
  },
});

/** Receives and deletes up to `count` messages, waiting at most `timeoutMs`. */
export async function drainQueue(sqs: SQSClient, queueUrl: string, count: number, timeoutMs = 10_000): Promise<Message[]> {
  return receiveMessages(sqs, queueUrl, count, timeoutMs);
}
