// The AWS SDK's client-side CPU per request, by the kinds a page costs (S3 PutObject and
// GetObject, SQS SendMessageBatch, ReceiveMessage, DeleteMessageBatch, and a queue worker's whole
// per-message round), through the clients and helpers the services use (createAwsClients,
// uploadFile, download, QueueSender, createWorker). The stand-ins run in a child process, so this
// thread's CPU clock (process.threadCpuUsage) holds only the client's side: middleware, endpoint,
// signing, serde, checksums, the HTTP handler. Process CPU adds V8's GC helpers and libuv.
//
//   pnpm bench:sdk     # SDK_BENCH_ROUNDS=5 SDK_BENCH_OPS=150; SDK_BENCH_KINDS=<regex> picks request kinds
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { S3Client } from "@aws-sdk/client-s3";
import { CreateQueueCommand, DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient, type Message } from "@aws-sdk/client-sqs";
import { start } from "../../packages/local-stack/src/index.ts";
import { commonEnv, createAwsClients, createWorker, download, QueueSender, silentLogger, uploadFile } from "../../packages/queue/src/index.ts";
import { table } from "./common.ts";

interface StandIns {
  env: Record<string, string>;
}

async function main(): Promise<void> {
  const rounds = Number(process.env.SDK_BENCH_ROUNDS ?? 5);
  const ops = Number(process.env.SDK_BENCH_OPS ?? 150);
  const child = fork(new URL(import.meta.url).pathname, ["stand-ins"], { execArgv: process.execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  try {
    const standIns = await new Promise<StandIns>((resolve, reject) => {
      child.once("message", (m) => resolve(m as StandIns));
      child.once("exit", (code) => reject(new Error(`the stand-ins' process exited (${code})`)));
    });
    await measure(standIns, rounds, ops);
  } finally {
    await stopChild(child);
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.send("stop");
  await exited;
}

/** One kind of request: `run(i)` makes one, `perOp` divides a round's CPU (messages per request). */
interface Kind {
  name: string;
  run: (i: number) => Promise<void>;
  /** Before each round (not timed). */
  prepare?: () => Promise<void>;
}

/** Clients to compare, built from the stand-ins' configuration. */
interface Variant {
  name: string;
  s3: S3Client;
  sqs: SQSClient;
}

async function measure({ env }: StandIns, rounds: number, ops: number): Promise<void> {
  const config = commonEnv.parse(env);
  const services = createAwsClients(config);
  const credentials = { accessKeyId: config.AWS_ACCESS_KEY_ID!, secretAccessKey: config.AWS_SECRET_ACCESS_KEY! };
  const plain = { region: config.AWS_REGION, credentials };
  const variants: Variant[] = [
    { name: "services' (createAwsClients)", ...services },
    {
      // The SDK's own settings, for comparison: the body's SHA-256 in the signature, no other change.
      name: "SDK defaults",
      s3: new S3Client({ ...plain, endpoint: config.AWS_ENDPOINT_URL_S3!, forcePathStyle: true }),
      sqs: new SQSClient({ ...plain, endpoint: config.AWS_ENDPOINT_URL_SQS! }),
    },
  ];
  const bucket = config.WORK_BUCKET;
  await uploadFile(services.s3, bucket, "sdk-bench/page.pdf", randomBytes(60_000), "application/pdf");
  const results = new Map<string, { thread: number[]; process: number[] }>();
  const only = new RegExp(process.env.SDK_BENCH_KINDS ?? ".");
  const kindsOf = new Map(variants.map((v) => [v, kinds(v, bucket, ops).filter((k) => only.test(k.name))]));
  // Warm-up: the first requests of a kind pay for loading and compiling its code.
  for (const [, ks] of kindsOf) {
    for (const k of ks) {
      await k.prepare?.();
      for (let i = 0; i < ops; i++) await k.run(i);
    }
  }
  for (let round = 0; round < rounds; round++) {
    // Alternating which variant goes first, so that drift in the machine's load favours neither.
    for (const v of round % 2 === 0 ? variants : [...variants].reverse()) {
      for (const k of kindsOf.get(v)!) {
        await k.prepare?.();
        const p0 = process.cpuUsage();
        const t0 = process.threadCpuUsage();
        for (let i = 0; i < ops; i++) await k.run(i);
        const t = process.threadCpuUsage(t0);
        const p = process.cpuUsage(p0);
        const key = `${k.name}\0${v.name}`;
        if (!results.has(key)) results.set(key, { thread: [], process: [] });
        results.get(key)!.thread.push((t.user + t.system) / 1000 / ops);
        results.get(key)!.process.push((p.user + p.system) / 1000 / ops);
      }
    }
  }
  for (const v of only.test("queue worker") ? variants : []) {
    const w = await workerRound(v.sqs, ops, rounds);
    results.set(`queue worker, per message (receive + delete)\0${v.name}`, w);
  }
  for (const v of variants) {
    v.s3.destroy();
    v.sqs.destroy();
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const rows = [...results]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, r]) => [...key.split("\0"), median(r.thread).toFixed(3), median(r.process).toFixed(3), r.thread.map((x) => x.toFixed(2)).join(" ")]);
  console.log(`SDK client CPU per request (ms), median of ${rounds} rounds of ${ops}; load ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  table([["request", "clients", "thread CPU-ms", "process CPU-ms", "rounds (thread)"], ...rows]);
}

/** The requests a page costs, made through `v`'s clients and the services' helpers. */
function kinds({ s3, sqs }: Variant, bucket: string, ops: number): Kind[] {
  // A page's PNG (~300 KB) of incompressible bytes.
  const png = randomBytes(300_000);
  let q: { queueUrl: string; sender: QueueSender } | undefined;
  let received: Message[] = [];
  const abort = new AbortController();
  /** A fresh queue holding `ops` × 10 messages. */
  const filled = async () => {
    q = await freshQueue(sqs);
    for (let i = 0; i < ops; i++) await q.sender.sendBodies(TEN_BODIES);
  };
  return [
    { name: "PutObject 300 KB (uploadFile)", run: (i) => uploadFile(s3, bucket, `sdk-bench/png/${i % 50}.png`, png, "image/png") },
    {
      name: "GetObject 60 KB (download)",
      run: async () => {
        await download(s3, bucket, "sdk-bench/page.pdf", { inMemoryMaxBytes: 1 << 20, spillTo: () => Promise.reject(new Error("no spill")) });
      },
    },
    {
      name: "SendMessageBatch x10 (QueueSender)",
      run: () => q!.sender.sendBodies(TEN_BODIES),
      prepare: async () => {
        q = await freshQueue(sqs);
      },
    },
    {
      // As sqs-consumer sends it: with an abort signal, the receive count attributes and all message attributes.
      name: "ReceiveMessage x10",
      prepare: filled,
      run: async () => {
        const out = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: q!.queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 1,
            VisibilityTimeout: 60,
            AttributeNames: ["ApproximateReceiveCount" as never],
            MessageSystemAttributeNames: ["ApproximateReceiveCount"],
            MessageAttributeNames: ["All"],
          }),
          { abortSignal: abort.signal },
        );
        received.push(...(out.Messages ?? []));
      },
    },
    {
      name: "DeleteMessageBatch x10",
      prepare: async () => {
        await filled();
        received = [];
        while (received.length < ops * 10) {
          const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: q!.queueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 600 }));
          received.push(...(out.Messages ?? []));
        }
      },
      run: async (i) => {
        const batch = received.slice(i * 10, i * 10 + 10);
        await sqs.send(
          new DeleteMessageBatchCommand({ QueueUrl: q!.queueUrl, Entries: batch.map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle })) }),
        );
      },
    },
  ];
}

const BODY = JSON.stringify({ v: 1, batchId: randomBytes(16).toString("hex"), documentId: randomBytes(16).toString("hex"), page: 1 });
const TEN_BODIES = Array.from({ length: 10 }, () => BODY);

let queues = 0;

/** A new, empty queue (SQS purges a queue at most once a minute) and a sender to it. */
async function freshQueue(sqs: SQSClient): Promise<{ queueUrl: string; sender: QueueSender }> {
  const out = await sqs.send(new CreateQueueCommand({ QueueName: `sdk-bench-${process.pid}-${++queues}` }));
  const queueUrl = out.QueueUrl!;
  return { queueUrl, sender: new QueueSender({ sqs, queueUrl, queueName: "sdk-bench", logger: silentLogger() }) };
}

/**
 * A queue worker (sqs-consumer underneath) with a handler that does nothing, over `ops` × 10
 * messages already waiting: its receives, deletes, heartbeat timers and own bookkeeping per message.
 */
async function workerRound(
  sqs: SQSClient,
  ops: number,
  rounds: number,
): Promise<{ thread: number[]; process: number[] }> {
  const out = { thread: [] as number[], process: [] as number[] };
  const messages = ops * 10;
  for (let round = 0; round < Math.max(1, Math.floor(rounds / 2)); round++) {
    const { queueUrl, sender } = await freshQueue(sqs);
    for (let i = 0; i < ops; i++) await sender.sendBodies(TEN_BODIES);
    let handled = 0;
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const worker = createWorker<unknown>({
      name: "sdk-bench",
      sqs,
      queueUrl,
      dlqUrl: queueUrl,
      concurrency: 20,
      waitTimeSeconds: 1,
      parse: (v) => v,
      handle: async () => {
        if (++handled === messages) done();
      },
    });
    const p0 = process.cpuUsage();
    const t0 = process.threadCpuUsage();
    worker.start();
    await finished;
    await worker.stop();
    const t = process.threadCpuUsage(t0);
    const p = process.cpuUsage(p0);
    out.thread.push((t.user + t.system) / 1000 / messages);
    out.process.push((p.user + p.system) / 1000 / messages);
  }
  return out;
}

if (process.argv[2] === "stand-ins") {
  // The child: the local stack's S3 and SQS stand-ins (and its Postgres, unused), until told to stop.
  const stack = await start({ name: `sdk-bench-${process.pid}`, ephemeral: true });
  process.send!({ env: stack.env } satisfies StandIns);
  process.once("message", () => void stack.stop().then(() => process.exit(0)));
} else {
  await main();
}
