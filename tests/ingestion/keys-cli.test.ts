import { createLogger } from "@docpipe/queue";
import { adminCommand } from "@docpipe/cli";
import { buildApp } from "@docpipe/ingestion";
import { expect, onTestFinished, test } from "../fixtures/index.js";
import { authed } from "./helpers.js";

const logger = createLogger({ service: "keys-cli-test", level: "warn" });

test("docpipe keys, plans and usage manage what the API enforces", async ({ stack, prisma, databaseUrl }) => {
  const saved = process.env.DATABASE_URL;
  process.env.DATABASE_URL = databaseUrl;
  onTestFinished(() => {
    if (saved === undefined) delete process.env.DATABASE_URL;
    else process.env.DATABASE_URL = saved;
  });
  const run = async (command: "keys" | "plans" | "usage", ...args: string[]): Promise<string[]> => {
    const lines: string[] = [];
    expect(await adminCommand(command, args, (l) => lines.push(l))).toBe(0);
    return lines;
  };
  // No key cache: rotation and disabling show at once (auth-limits.test.ts checks they do within the cache's bound).
  const app = buildApp({
    prisma,
    s3: stack.s3,
    sqs: stack.sqs,
    queueUrls: stack.queueUrls,
    workBucket: stack.workBucket,
    logger,
    resumeOnStart: false,
    auth: { keyCacheSeconds: 0 },
  });
  onTestFinished(() => app.close());
  await app.ready();

  await run("plans", "set", "--name", "cli-plan", "--rate", "5", "--burst", "5", "--quota", "100", "--quota-pages", "2500", "--period", "month");
  expect((await run("plans", "list")).join("\n")).toMatch(/cli-plan\s+5\s+5\s+100\s+2500\s+month/);

  const [key] = await run("keys", "create", "--name", "scanner", "--owner", "records", "--plan", "cli-plan", "--bucket", stack.stagingBucket, "--prefix", "in/");
  expect(key).toMatch(/^dp_[0-9a-f]{8}_/);
  const prefix = key!.slice(0, 11);
  const usage = (await authed(app, key!).get("/usage").expect(200)).body;
  expect(usage).toMatchObject({ key: { prefix, name: "scanner", owner: "records" }, plan: { name: "cli-plan", quotaDocuments: 100, quotaPages: 2500 } });
  expect(usage.quota.pages).toEqual({ limit: 2500, used: 0, remaining: 2500 });
  expect((await authed(app, key!).post("/batches").send({ bucket: stack.stagingBucket, prefixes: ["out/"] })).body.error.code).toBe(
    "prefix_not_allowed",
  );

  const listed = (await run("keys", "list")).join("\n");
  expect(listed).toContain(prefix);
  expect(listed).toContain("records");
  expect(listed).not.toContain(key!.slice(12)); // the secret is never shown again

  const [rotated] = await run("keys", "rotate", prefix, "--grace", "0");
  expect(rotated).not.toBe(key);
  expect((await authed(app, key!).get("/usage")).body.error.code).toBe("api_key_expired");
  await authed(app, rotated!).get("/usage").expect(200);

  const report = (await run("usage")).join("\n");
  expect(report).toMatch(new RegExp(`${rotated!.slice(0, 11)}\\s+scanner\\s+records\\s+cli-plan\\s+3\\s+0\\s+0\\s+0\\s+0`));

  await run("keys", "disable", rotated!.slice(0, 11));
  expect((await authed(app, rotated!).get("/usage")).body.error.code).toBe("api_key_disabled");
  await expect(adminCommand("keys", ["create", "--name", "x", "--owner", "y", "--plan", "nope", "--bucket", "b-b-b"], () => undefined)).rejects.toThrow(
    /plan_not_found/,
  );
});

test("in the admin task's environment (DB_HOST, no DATABASE_URL) a database command refuses rather than start a local stack", async () => {
  const saved = { DATABASE_URL: process.env.DATABASE_URL, DB_HOST: process.env.DB_HOST };
  delete process.env.DATABASE_URL;
  process.env.DB_HOST = "docpipe.cluster-abc.eu-west-1.rds.amazonaws.com";
  onTestFinished(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  await expect(adminCommand("keys", ["list"], () => undefined)).rejects.toThrow(/DB_HOST is set but DATABASE_URL is not: run the command through the image's entrypoint/);
});
