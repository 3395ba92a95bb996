// The inference client and a usage plan working together, as on AWS (API Gateway's usage plan in
// front of the SageMaker endpoint, infra/lib/model-api.ts): the local stack's usage-plan gateway
// in front of the reference model, two inference clients (two tasks) offering more than the plan
// admits. Nothing may be lost, every 429 must be retried no sooner than its Retry-After, a 429 is
// back-pressure (no breaker opens, no message is received twice), and the model must never hold
// more calls than the clients' combined concurrency. Each client reads the plan's API key from
// the stack's Secrets Manager as a task does on AWS (MODEL_API_KEY_SECRET, its own credentials).
import { randomBytes } from "node:crypto";
import { CreateSecretCommand, PutSecretValueCommand } from "@aws-sdk/client-secrets-manager";
import type { PrismaClient } from "@docpipe/db";
import {
  buildModelInvoker,
  createInferenceClient,
  loadConfig,
  ModelUnavailableError,
  type InferenceClient,
  type InferenceClientStatus,
} from "@docpipe/inference-client";
import { startUsagePlanGateway, type GatewayCall, type LocalStack, type UsagePlanGateway } from "@docpipe/local-stack";
import { startReferenceModel, type ReferenceModel } from "@docpipe/reference-model";
import { describe, expect, onTestFinished, test as stackTest } from "../fixtures/index.js";
import { queueDepth } from "../fixtures/queues.js";
import { seededRandom, waitFor } from "../fixtures/wait.js";
import { pagePngs, seedDocument, uploadPageImage, type SeededDocument } from "./helpers.js";

/** Tasks of the inference client, and calls each may have in flight (MODEL_MAX_CONCURRENCY). */
const CLIENTS = 2;
const MAX_CONCURRENCY = 3;

const test = stackTest.extend<{ model: ReferenceModel }>({
  model: async ({ stack }, use) => {
    const model = await startReferenceModel({ s3: stack.s3 });
    try {
      await use(model);
    } finally {
      await model.stop();
    }
  },
});

/** The plan's API key, kept in the stack's Secrets Manager as the model tier keeps it on AWS. */
async function modelKeySecret(stack: LocalStack): Promise<{ arn: string; key: string }> {
  const key = randomBytes(20).toString("hex");
  const out = await stack.secretsManager.send(new CreateSecretCommand({ Name: `docpipe/model-api-key-${randomBytes(4).toString("hex")}`, SecretString: key }));
  return { arn: out.ARN!, key };
}

/** Starts a usage-plan gateway in front of the model whose key is a new secret's; stopped after the test. */
async function planWithKey(stack: LocalStack, model: ReferenceModel, plan: Omit<Parameters<typeof startUsagePlanGateway>[0], "target" | "apiKey">) {
  const secret = await modelKeySecret(stack);
  const gateway = await startUsagePlanGateway({ target: model.url, apiKey: secret.key, ...plan });
  onTestFinished(() => gateway.stop());
  return { gateway, secret };
}

/**
 * Runs CLIENTS inference clients against the gateway until every page of `docs` is scored, then
 * stops them; returns their status just before. Each builds its invoker from its environment, as
 * the service's main does: MODEL_URL and MODEL_API_KEY_SECRET, the key read from Secrets Manager.
 */
async function scoreThroughPlan(
  stack: LocalStack,
  prisma: PrismaClient,
  env: Record<string, string>,
  plan: { gateway: UsagePlanGateway; secret: { arn: string } },
  docs: SeededDocument[],
): Promise<InferenceClientStatus[]> {
  const config = loadConfig({ ...env, MODEL_URL: `${plan.gateway.url}/invocations`, MODEL_API_KEY_SECRET: plan.secret.arn });
  const clients: InferenceClient[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    clients.push(
      createInferenceClient({
        sqs: stack.sqs,
        prisma,
        queueUrls: stack.queueUrls,
        model: await buildModelInvoker(config),
        maxConcurrency: MAX_CONCURRENCY,
        // No client-side rate limit: the load above the plan is the point. The breaker keeps its
        // production settings (5 failures, 30 s): a 429 must not open it.
        ratePerSecond: 0,
        waitTimeSeconds: 1,
        stopTimeoutSeconds: 5,
        workerId: `inference-client/${i}`,
        random: seededRandom(20 + i),
      }),
    );
  }
  for (const c of clients) c.start();
  try {
    const { ink } = await pagePngs();
    await Promise.all(docs.flatMap((d) => Array.from({ length: d.pageCount }, (_, i) => uploadPageImage(stack.s3, stack.workBucket, d, i + 1, ink))));
    const ids = docs.map((d) => d.documentId);
    await waitFor(
      "every document done",
      async () => ((await prisma.document.count({ where: { id: { in: ids }, state: "done" } })) === docs.length ? true : undefined),
      180_000,
    );
    return clients.map((c) => c.status());
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
  }
}

/** What a person would check afterwards: every page scored exactly once, nothing dead-lettered. */
async function expectExactlyOnce(stack: LocalStack, prisma: PrismaClient, docs: SeededDocument[], model: ReferenceModel, gateway: UsagePlanGateway) {
  const pages = docs.reduce((n, d) => n + d.pageCount, 0);
  for (const d of docs) {
    const results = await prisma.inferenceResult.findMany({ where: { documentId: d.documentId }, orderBy: { pageNumber: "asc" } });
    expect(results.map((r) => r.pageNumber)).toEqual(Array.from({ length: d.pageCount }, (_, i) => i + 1));
  }
  expect(await prisma.page.count({ where: { state: "done" } })).toBe(pages);
  expect(await prisma.auditEvent.count({ where: { stage: "inference", outcome: "succeeded" } })).toBe(pages);
  // Waiting out a 429 holds the message: each page was received once, and never failed.
  const started = await prisma.auditEvent.findMany({ where: { stage: "inference", outcome: "started" }, select: { attempt: true } });
  expect(started.map((e) => e.attempt)).toEqual(Array.from({ length: pages }, () => 1));
  expect(await prisma.auditEvent.count({ where: { stage: "inference", outcome: "failed" } })).toBe(0);
  expect(await prisma.auditEvent.count({ where: { outcome: "dead_lettered" } })).toBe(0);
  expect(await queueDepth(stack.sqs, stack.queueUrls.convertedImage.dlqUrl)).toBe(0);
  const stats = model.stats();
  expect(stats.byStatus).toEqual({ "200": pages });
  // Every call the gateway admitted reached the model, and nothing else did.
  expect(gateway.calls().filter((c) => c.refusedBy === undefined)).toHaveLength(stats.requests);
  // The model's limit is what the clients together may have in flight; the plan's burst must not breach it either.
  expect(stats.maxInFlight).toBeLessThanOrEqual(CLIENTS * MAX_CONCURRENCY);
  // Per page, in order: refusals by the plan, then the one admitted call, and nothing after it.
  const byPage = new Map<string | undefined, GatewayCall[]>();
  for (const c of gateway.calls()) byPage.set(c.pageKey, [...(byPage.get(c.pageKey) ?? []), c]);
  expect(byPage.size).toBe(pages);
  for (const calls of byPage.values()) {
    expect(calls.at(-1)!.status).toBe(200);
    expect(calls.slice(0, -1).every((c) => c.status === 429)).toBe(true);
  }
}

/** Each 429 of the gateway, and the next call for the same page: never sooner than the Retry-After. */
function retriesAfter429(calls: GatewayCall[]): { gapMs: number; retryAfterMs: number }[] {
  return calls.flatMap((c, i) => {
    if (c.status !== 429) return [];
    const next = calls.slice(i + 1).find((n) => n.pageKey === c.pageKey);
    if (!next) throw new Error(`the 429 for ${c.pageKey} at ${c.at.toFixed(0)} ms was never retried`);
    return [{ gapMs: next.at - c.at, retryAfterMs: c.retryAfterSeconds! * 1000 }];
  });
}

describe("inference under a usage plan (the local stand-in for API Gateway's)", () => {
  test("sustained load above the plan's rate: every page scored once at the plan's rate, each 429 waited out, no breaker opened", async ({ stack, prisma, env, model }) => {
    model.setFaults({ delayMs: 40 });
    // 24 pages at 2 a second: at least 10 s of load, from 6 calls in flight that could go many times faster.
    const plan = { rateLimit: 2, burstLimit: 2 };
    const through = await planWithKey(stack, model, plan);
    const docs = [await seedDocument(prisma, stack.workBucket, 12), await seedDocument(prisma, stack.workBucket, 12)];

    const statuses = await scoreThroughPlan(stack, prisma, env, through, docs);

    // Back-pressure, not failure: neither task's breaker opened (it would have paused that task 30 s).
    expect(statuses.map((st) => st.breakerOpens)).toEqual([0, 0]);
    await expectExactlyOnce(stack, prisma, docs, model, through.gateway);
    const calls = through.gateway.calls();
    const throttled = calls.filter((c) => c.refusedBy === "rate");
    // Sustained: the plan refused calls in both halves of the run (at its very end fewer pages
    // are left than the plan admits, so the last calls go through).
    const middle = (calls[0]!.at + calls.at(-1)!.at) / 2;
    expect(throttled.filter((c) => c.at < middle).length).toBeGreaterThan(0);
    expect(throttled.filter((c) => c.at > middle).length).toBeGreaterThan(0);
    expect(calls.filter((c) => c.status === 429).every((c) => c.refusedBy === "rate" && c.retryAfterSeconds === 1)).toBe(true);
    for (const r of retriesAfter429(calls)) expect(r.gapMs).toBeGreaterThanOrEqual(r.retryAfterMs);
    // The gateway held the plan, and the clients used it: what it admitted is close to what its
    // token bucket offered over the run (burst + rate × span), never more.
    const admitted = calls.filter((c) => c.refusedBy === undefined);
    const offered = plan.burstLimit + (plan.rateLimit * (admitted.at(-1)!.at - calls[0]!.at)) / 1000;
    expect(admitted.length).toBeLessThanOrEqual(offered + 1);
    expect(admitted.length).toBeGreaterThanOrEqual(0.8 * offered);
  });

  test("a spent quota holds the pages until its period resets, then scores them all", async ({ stack, prisma, env, model }) => {
    const quota = { limit: 6, periodMs: 2_500 };
    const through = await planWithKey(stack, model, { rateLimit: 100, burstLimit: 100, quota });
    const docs = [await seedDocument(prisma, stack.workBucket, 10)];

    const statuses = await scoreThroughPlan(stack, prisma, env, through, docs);

    expect(statuses.map((st) => st.breakerOpens)).toEqual([0, 0]);
    await expectExactlyOnce(stack, prisma, docs, model, through.gateway);
    const calls = through.gateway.calls();
    const overQuota = calls.filter((c) => c.refusedBy === "quota");
    expect(overQuota.length).toBeGreaterThan(0);
    // Retry-After is the time left in the period, so the retries land after the reset.
    for (const c of overQuota) expect(c.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    for (const c of overQuota) expect(c.retryAfterSeconds).toBeLessThanOrEqual(Math.ceil(quota.periodMs / 1000));
    for (const r of retriesAfter429(calls)) expect(r.gapMs).toBeGreaterThanOrEqual(r.retryAfterMs);
    const perPeriod = new Map<number, number>();
    for (const c of calls.filter((x) => x.refusedBy === undefined)) {
      const p = Math.floor(c.at / quota.periodMs);
      perPeriod.set(p, (perPeriod.get(p) ?? 0) + 1);
    }
    expect([...perPeriod.values()].every((n) => n <= quota.limit)).toBe(true);
    expect(perPeriod.size).toBeGreaterThanOrEqual(2);
  });

  test("a rotated key is read again on the first 403, once for every call that met it; a key the plan refuses stays a failure", async ({ stack, prisma, env, model }) => {
    const { gateway, secret } = await planWithKey(stack, model, { rateLimit: 100, burstLimit: 100 });
    const config = loadConfig({ ...env, MODEL_URL: `${gateway.url}/invocations`, MODEL_API_KEY_SECRET: secret.arn });
    const invoker = await buildModelInvoker(config);
    // Read at start-up, with the client's own credentials.
    expect(stack.secretReads(secret.arn)).toBe(1);
    const doc = await seedDocument(prisma, stack.workBucket, 4);
    const { ink } = await pagePngs();
    const keys = await Promise.all([1, 2, 3, 4].map((n) => uploadPageImage(stack.s3, stack.workBucket, doc, n, ink)));
    const score = (key: string) => invoker.invoke({ bucket: stack.workBucket, key }, AbortSignal.timeout(30_000));

    await score(keys[0]!);
    await score(keys[1]!);
    expect(stack.secretReads(secret.arn)).toBe(1);

    // Rotation: a new value in the secret, and the plan's key follows (a deploy).
    const rotated = randomBytes(20).toString("hex");
    await stack.secretsManager.send(new PutSecretValueCommand({ SecretId: secret.arn, SecretString: rotated }));
    gateway.setApiKey(rotated);
    const before = gateway.calls().length;
    await Promise.all(keys.map(score));
    expect(stack.secretReads(secret.arn)).toBe(2);
    const afterRotation = gateway.calls().slice(before);
    expect(afterRotation.filter((c) => c.status === 403)).toHaveLength(4);
    expect(afterRotation.filter((c) => c.status === 200).map((c) => c.pageKey).sort()).toEqual([...keys].sort());

    // A key the plan does not know (the secret and the plan disagree): read once more, then a failure the breaker counts.
    gateway.setApiKey("a-key-nobody-has");
    const refused = await score(keys[0]!).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ModelUnavailableError);
    expect(refused).toMatchObject({ code: "model_http_403" });
    expect(stack.secretReads(secret.arn)).toBe(3);
  });

  test("a secret the client cannot read stops it at start-up, naming the secret and why", async ({ env }) => {
    const config = loadConfig({ ...env, MODEL_URL: "http://127.0.0.1:9/invocations", MODEL_API_KEY_SECRET: "docpipe/no-such-key" });
    const err = await buildModelInvoker(config).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "model_key_unreadable" });
    expect((err as Error).message).toMatch(/secret docpipe\/no-such-key: ResourceNotFoundException/);
  });

  test("refuses a call without the key (403) and a body outside the contract (400) before the model sees it", async ({ model }) => {
    const API_KEY = "local-usage-plan-key-0123456789";
    const gateway = await startUsagePlanGateway({ target: model.url, apiKey: API_KEY, rateLimit: 10, burstLimit: 10 });
    onTestFinished(() => gateway.stop());
    const post = (headers: Record<string, string>, body: string) =>
      fetch(`${gateway.url}/invocations`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
    expect((await post({}, JSON.stringify({ bucket: "b", key: "k" }))).status).toBe(403);
    expect((await post({ "x-api-key": "wrong" }, JSON.stringify({ bucket: "b", key: "k" }))).status).toBe(403);
    expect((await post({ "x-api-key": API_KEY }, JSON.stringify({ bucket: "b" }))).status).toBe(400);
    // A well-formed call passes through, and the model's own answer comes back (no such object: 404).
    expect((await post({ "x-api-key": API_KEY }, JSON.stringify({ bucket: "docpipe-work", key: "missing.png" }))).status).toBe(404);
    expect(model.stats().requests).toBe(1);
  });
});
