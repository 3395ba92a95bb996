import { randomUUID } from "node:crypto";
import { createServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { createWorker, Liveness, serveLiveness, SinglePageMessage, type WorkerOptions } from "@docpipe/queue";
import { describe, expect, onTestFinished } from "vitest";
import { waitFor } from "../fixtures/wait.js";
import { test, type TestQueue } from "./fixtures.js";

/** A clock the test moves: a loop's silence is measured on it, its beats happen in real time. */
function manualClock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

const options = (sqs: SQSClient, q: TestQueue, liveness: Liveness, extra: Partial<WorkerOptions<SinglePageMessage>> = {}): WorkerOptions<SinglePageMessage> => ({
  name: "live-worker",
  queueUrl: q.url,
  dlqUrl: q.dlqUrl,
  sqs,
  parse: (b) => SinglePageMessage.parse(b),
  handle: async () => undefined,
  waitTimeSeconds: 1,
  liveness,
  ...extra,
});

const livez = async (url: string) => {
  const res = await fetch(`${url}/livez`);
  return { status: res.status, body: (await res.json()) as { status: string; loops: { name: string; alive: boolean }[] } };
};

describe("worker liveness (the container health check's view)", () => {
  test("a worker polling an empty queue beats on every poll and is reported alive", async ({ sqs, createQueue, track }) => {
    const clock = manualClock();
    const liveness = new Liveness(clock);
    const server = await serveLiveness(liveness, { port: 0 });
    onTestFinished(() => server.close());
    const q = await createQueue();
    const worker = track(createWorker(options(sqs, q, liveness)));
    expect(liveness.check().loops).toEqual([]);
    worker.start();

    // Ten minutes pass on the health check's clock; the next poll (a 1 s long poll) beats.
    clock.advance(600_000);
    expect(liveness.check().alive).toBe(false);
    await waitFor("a beat of the loop", () => liveness.check().loops[0]?.silentMs === 0);
    expect(await livez(server.url)).toMatchObject({ status: 200, body: { status: "alive", loops: [{ name: "live-worker", alive: true }] } });

    await worker.stop();
    // A loop stopped on purpose no longer counts.
    expect(liveness.check()).toEqual({ alive: true, loops: [] });
  });

  test("a worker whose receive hangs stops beating and is reported wedged past its bound", async ({ createQueue, track }) => {
    // An "SQS" that accepts connections and never answers: the poll loop hangs in ReceiveMessage.
    const sockets = new Set<Socket>();
    const silent = createServer((s) => void sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    onTestFinished(() => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => silent.close(() => r()));
    });
    const hung = new SQSClient({
      region: "us-east-1",
      endpoint: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
      maxAttempts: 1,
    });
    onTestFinished(() => hung.destroy());
    const clock = manualClock();
    const liveness = new Liveness(clock);
    const server = await serveLiveness(liveness, { port: 0 });
    onTestFinished(() => server.close());
    const q = await createQueue();
    const worker = track(createWorker(options(hung, q, liveness)));
    worker.start();
    await waitFor("a connection", () => sockets.size > 0);

    const [loop] = liveness.check().loops;
    clock.advance(loop!.maxSilenceMs - 1);
    await new Promise((r) => setTimeout(r, 1_500)); // longer than a healthy poll
    expect(liveness.check().alive).toBe(true);
    clock.advance(2);
    const { status, body } = await livez(server.url);
    expect(status).toBe(503);
    expect(body).toMatchObject({ status: "wedged", loops: [{ name: "live-worker", alive: false }] });
    await worker.stop({ timeoutMs: 1_000 });
  });

  test("a worker whose every slot holds a long job stays alive through the jobs' heartbeats", async ({ sqs, createQueue, track }) => {
    const clock = manualClock();
    const liveness = new Liveness(clock);
    const q = await createQueue({ visibilityTimeoutSeconds: 3 });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let started = false;
    const worker = track(
      createWorker(
        options(sqs, q, liveness, {
          concurrency: 1,
          visibilityTimeoutSeconds: 3,
          heartbeatSeconds: 1,
          handle: async () => {
            started = true;
            await held;
          },
        }),
      ),
    );
    const body = JSON.stringify({ version: 1, batchId: randomUUID(), documentId: randomUUID(), bucket: "b", key: "k", pageNumber: 1 });
    await sqs.send(new SendMessageCommand({ QueueUrl: q.url, MessageBody: body }));
    worker.start();
    await waitFor("the handler to start", () => started);

    // The loop waits for a free slot and does not poll; the heartbeats show the worker is busy, not stuck.
    clock.advance(600_000);
    await waitFor("a beat while every slot is busy", () => liveness.check().loops[0]?.silentMs === 0, 5_000);
    expect(liveness.check().alive).toBe(true);
    release();
    await worker.stop();
  });
});
