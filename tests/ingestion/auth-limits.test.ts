// Failed authentication is limited per client address (no query past the limit), and known keys
// are cached for a bounded time that revocation and rotation wait at most (issue 13).
import type { PrismaClient } from "@docpipe/db";
import { disableApiKey, rotateApiKey } from "@docpipe/api-keys";
import { buildApp, type AppOptions, type IngestionApp } from "@docpipe/ingestion";
import { createLogger } from "@docpipe/queue";
import request from "supertest";
import { describe, expect, test as stackTest } from "../fixtures/index.js";
import { createTestKey } from "./helpers.js";

const logger = createLogger({ service: "ingestion-auth-limits-test", level: "silent" });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The test's Prisma client, counting the raw statements (authentication's lookups) it is asked to run. */
function counting(prisma: PrismaClient): { prisma: PrismaClient; statements: () => number } {
  let statements = 0;
  const proxy = new Proxy(prisma, {
    get(target, prop) {
      if (prop === "$queryRaw" || prop === "$executeRaw") statements++;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { prisma: proxy, statements: () => statements };
}

const it = stackTest.extend<{ $test: { makeApp: (o?: Partial<AppOptions>) => Promise<IngestionApp> } }>({
  makeApp: async ({ stack, prisma }, use) => {
    const made: IngestionApp[] = [];
    try {
      await use(async (o = {}) => {
        const app = buildApp({ prisma, s3: stack.s3, sqs: stack.sqs, queueUrls: stack.queueUrls, workBucket: stack.workBucket, logger, resumeOnStart: false, ...o });
        made.push(app);
        await app.ready();
        return app;
      });
    } finally {
      for (const app of made) await app.close();
    }
  },
});

describe("failed authentication is limited per client address", () => {
  it("2,000 requests with unknown keys: 401 up to the burst, then 429 without a query, other addresses and cached keys unaffected", async ({ prisma, makeApp }) => {
    const db = counting(prisma);
    // Behind one proxy, as on AWS: X-Forwarded-For names the client.
    const app = await makeApp({ prisma: db.prisma, trustProxy: 1, auth: { failureBurst: 20, failuresPerSecond: 0.001, keyCacheSeconds: 1 } });
    const url = await app.listen({ port: 0, host: "127.0.0.1" });
    const usage = async (ip: string, key: string) => {
      const res = await fetch(`${url}/usage`, { headers: { "x-forwarded-for": ip, "x-api-key": key } });
      return { status: res.status, headers: res.headers, body: (await res.json()) as { error: Record<string, string> } };
    };
    const { key } = await createTestKey(prisma);
    expect((await usage("203.0.113.7", key)).status).toBe(200); // now cached

    const before = db.statements();
    const statuses: Record<string, number> = {};
    for (let i = 0; i < 2000; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, (_, j) => usage("203.0.113.7", `dp_guess${i + j}_x`)));
      for (const r of batch) {
        const k = `${r.status} ${r.body.error.code}`;
        statuses[k] = (statuses[k] ?? 0) + 1;
      }
    }
    // One failure back per 1,000 s: the burst is all this address gets, however many requests run at once.
    expect(statuses).toEqual({ "401 api_key_unknown": 20, "429 auth_failures_limited": 1980 });
    expect(db.statements() - before).toBe(20);

    const limited = await usage("203.0.113.7", "dp_guess_again");
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(Object.keys(limited.body.error).sort()).toEqual(["code", "details", "message"]);
    // The key in use from that address still passes, even once its cache entry has expired; another address is not limited.
    await sleep(1_100);
    expect((await usage("203.0.113.7", key)).status).toBe(200);
    expect((await usage("198.51.100.1", "dp_someone_else")).body.error.code).toBe("api_key_unknown");
  });
});

describe("known keys are cached for a bounded time", () => {
  it("a disabled key, and a secret rotated without grace, stop working within the cache's bound", async ({ prisma, makeApp }) => {
    const app = await makeApp({ auth: { keyCacheSeconds: 1 } });
    const a = await createTestKey(prisma);
    const b = await createTestKey(prisma);
    await request(app.server).get("/usage").set("x-api-key", a.key).expect(200);
    await request(app.server).get("/usage").set("x-api-key", b.key).expect(200);
    await disableApiKey(prisma, a.id);
    const rotated = await rotateApiKey(prisma, b.id, { graceSeconds: 0 });
    await sleep(1_100);
    expect((await request(app.server).get("/usage").set("x-api-key", a.key)).body.error.code).toBe("api_key_disabled");
    expect((await request(app.server).get("/usage").set("x-api-key", b.key)).body.error.code).toBe("api_key_expired");
    await request(app.server).get("/usage").set("x-api-key", rotated.key).expect(200);
  });

  it("a rotated secret's grace period ends on time even while it is cached", async ({ prisma, makeApp }) => {
    const app = await makeApp({ auth: { keyCacheSeconds: 60 } });
    const k = await createTestKey(prisma);
    await rotateApiKey(prisma, k.id, { graceSeconds: 1 });
    await request(app.server).get("/usage").set("x-api-key", k.key).expect(200); // the old secret, cached until its grace ends
    await sleep(1_100);
    expect((await request(app.server).get("/usage").set("x-api-key", k.key)).body.error.code).toBe("api_key_expired");
  });
});
