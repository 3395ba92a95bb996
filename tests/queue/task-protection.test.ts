import { startEcsAgent, type EcsAgent } from "@docpipe/local-stack";
import { randomUUID } from "node:crypto";
import { SendMessageCommand } from "@aws-sdk/client-sqs";
import { createLogger, createTaskProtection, createWorker, SinglePageMessage } from "@docpipe/queue";
import { Writable } from "node:stream";
import { describe, expect, onTestFinished, test } from "vitest";
import { queueDepth } from "../fixtures/queues.js";
import { waitFor } from "../fixtures/wait.js";
import { test as queueTest } from "./fixtures.js";

/** The agent stand-in speaks the ECS agent's contract over real HTTP; nothing of ours is replaced. */
async function agent(): Promise<EcsAgent> {
  const a = await startEcsAgent();
  onTestFinished(() => a.close());
  return a;
}

const requests = (a: EcsAgent) => a.requests.map(({ at: _at, ...r }) => r);

function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString("utf8").split("\n").filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger({ service: "test", level: "debug", destination: stream }), lines };
}

describe("task scale-in protection through the ECS agent endpoint", () => {
  test("protects the task while the work runs and releases it after", async () => {
    const a = await agent();
    const protection = createTaskProtection({ agentUri: a.uri, expiresInMinutes: 90 });
    let during: ReturnType<EcsAgent["state"]> | undefined;
    const result = await protection.hold(async () => {
      during = a.state();
      return "split";
    });
    expect(result).toBe("split");
    expect(during).toMatchObject({ protectionEnabled: true });
    expect(during!.expiresAt! - Date.now()).toBeGreaterThan(89 * 60_000);
    expect(a.state()).toEqual({ protectionEnabled: false });
    expect(requests(a)).toEqual([{ ProtectionEnabled: true, ExpiresInMinutes: 90 }, { ProtectionEnabled: false }]);
  });

  test("overlapping holds share one protection, released when the last one ends, also when work fails", async () => {
    const a = await agent();
    const protection = createTaskProtection({ agentUri: a.uri });
    let finishFirst!: () => void;
    const first = protection.hold(() => new Promise<void>((r) => (finishFirst = r)));
    await expect(protection.hold(async () => {
      expect(a.state().protectionEnabled).toBe(true);
      throw new Error("breakdown failed");
    })).rejects.toThrow("breakdown failed");
    expect(a.state().protectionEnabled).toBe(true); // the first hold still runs
    finishFirst();
    await first;
    expect(protection.holds).toBe(0);
    expect(requests(a)).toEqual([{ ProtectionEnabled: true, ExpiresInMinutes: 60 }, { ProtectionEnabled: false }]);
  });

  test("renews the protection while a long job holds it, so it never lapses under the job", async () => {
    const a = await agent();
    const protection = createTaskProtection({ agentUri: a.uri, expiresInMinutes: 1, renewEveryMs: 100 });
    await protection.hold(() => new Promise((r) => setTimeout(r, 450)));
    const enables = a.requests.filter((r) => r.ProtectionEnabled);
    expect(enables.length).toBeGreaterThanOrEqual(4);
    expect(a.requests.at(-1)).toMatchObject({ ProtectionEnabled: false });
  });

  test("runs the work anyway when the agent refuses, and says why in the log", async () => {
    const a = await agent();
    const { logger, lines } = capturedLogger();
    const protection = createTaskProtection({ agentUri: a.uri, logger });
    a.failNext("failure");
    expect(await protection.hold(async () => "done")).toBe("done");
    a.failNext("error");
    expect(await protection.hold(async () => "done again")).toBe("done again");
    const warnings = lines.filter((l) => l.msg === "setting task protection failed").map((l) => l.errorCode);
    expect(warnings).toEqual(["TASK_NOT_VALID", "ServerException"]);
    expect(a.state()).toEqual({ protectionEnabled: false });
  });

  test("outside ECS (no agent URI) a hold only runs the work", async () => {
    const protection = createTaskProtection({});
    expect(await protection.hold(async () => 42)).toBe(42);
  });
});

describe("a worker with task protection", () => {
  queueTest("is protected exactly while it handles a message", async ({ sqs, createQueue, track }) => {
    const a = await agent();
    const q = await createQueue();
    const seen: boolean[] = [];
    const worker = track(
      createWorker({
        name: "splitter-large",
        queueUrl: q.url,
        dlqUrl: q.dlqUrl,
        sqs,
        parse: (b) => SinglePageMessage.parse(b),
        handle: async () => void seen.push(a.state().protectionEnabled),
        waitTimeSeconds: 1,
        taskProtection: createTaskProtection({ agentUri: a.uri }),
      }),
    );
    worker.start();
    await new Promise((r) => setTimeout(r, 300));
    expect(a.requests).toEqual([]); // idle: nothing protected
    const body = (n: number) => JSON.stringify({ version: 1, batchId: randomUUID(), documentId: randomUUID(), bucket: "b", key: "k", pageNumber: n });
    await sqs.send(new SendMessageCommand({ QueueUrl: q.url, MessageBody: body(1) }));
    await waitFor("the message handled under protection", () => seen.length === 1 && a.requests.length === 2);
    expect(seen).toEqual([true]);
    expect(a.state()).toEqual({ protectionEnabled: false });
    await waitFor("the message acknowledged", async () => (await queueDepth(sqs, q.url)) === 0);
    await worker.stop();
  });
});

describe("the ECS agent stand-in", () => {
  test("rejects what the real agent rejects", async () => {
    const a = await agent();
    const put = (body: string) => fetch(`${a.uri}/task-protection/v1/state`, { method: "PUT", headers: { "content-type": "application/json" }, body });
    const decode = { error: { Code: "InvalidParameterException", Message: "UpdateTaskProtection: failed to decode request" } };
    expect(await (await put('{"ProtectionEnabled":true,"Extra":1}')).json()).toEqual(decode);
    expect((await put('{"ProtectionEnabled":true,"ExpiresInMinutes":"60"}')).status).toBe(400);
    expect(await (await put("{}")).json()).toMatchObject({ error: { Message: "Invalid request: does not contain 'ProtectionEnabled' field" } });
    expect((await put('{"ProtectionEnabled":true,"ExpiresInMinutes":2881}')).status).toBe(400);
    expect(a.requests).toEqual([]);
    const ok = await put('{"ProtectionEnabled":true}');
    expect(await ok.json()).toMatchObject({ protection: { ProtectionEnabled: true, TaskArn: a.taskArn } });
    expect(a.state().expiresAt! - Date.now()).toBeGreaterThan(119 * 60_000); // 120 minutes by default
  });
});
