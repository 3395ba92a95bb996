import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelRejectedError, ModelThrottledError, ModelUnavailableError } from "./errors.js";
import { HttpModelInvoker } from "./invoker.js";

/** A tiny endpoint whose answer is chosen by the key asked for; records the headers it got. */
let server: Server;
let url: string;
const seenHeaders: Record<string, string | string[] | undefined>[] = [];
const good = { model: { name: "m", version: "1" }, output: { inkCoverage: 0.2 }, features: ["ink"] };

beforeAll(async () => {
  server = createServer((req, res) => {
    seenHeaders.push(req.headers);
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      const { key } = JSON.parse(body) as { key: string };
      const [status, text, headers] = (
        {
          ok: [200, JSON.stringify(good), {}],
          throttled: [429, "slow down", { "retry-after": "2" }],
          throttledNoHint: [429, "slow down", {}],
          gatewayBusy: [503, "busy", { "retry-after": "1" }],
          broken: [503, "down", {}],
          refused: [400, "bad page", {}],
          garbage: [200, "<html>", {}],
          offContract: [200, JSON.stringify({ result: 1 }), {}],
          slow: [200, JSON.stringify(good), {}],
        } as Record<string, [number, string, Record<string, string>]>
      )[key]!;
      setTimeout(() => res.writeHead(status, headers).end(text), key === "slow" ? 500 : 0);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/invocations`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const call = (key: string, opts: Partial<ConstructorParameters<typeof HttpModelInvoker>[0]> = {}) =>
  new HttpModelInvoker({ url, ...opts }).invoke({ bucket: "b", key }, new AbortController().signal);

describe("HttpModelInvoker", () => {
  it("returns the model's answer and sends the auth header", async () => {
    await expect(call("ok", { authHeader: { name: "x-api-key", key: "k1" } })).resolves.toEqual(good);
    expect(seenHeaders.at(-1)?.["x-api-key"]).toBe("k1");
  });

  it("turns 429 into back-pressure carrying Retry-After, and 5xx into a failure carrying it", async () => {
    const e = await call("throttled").catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ModelThrottledError);
    expect(e).toMatchObject({ code: "model_throttled", status: 429, retryAfterMs: 2000 });
    const bare = await call("throttledNoHint").catch((x: unknown) => x);
    expect(bare).toBeInstanceOf(ModelThrottledError);
    expect((bare as ModelThrottledError).retryAfterMs).toBeUndefined();
    const busy = await call("gatewayBusy").catch((x: unknown) => x);
    expect(busy).toBeInstanceOf(ModelUnavailableError);
    expect(busy).not.toBeInstanceOf(ModelThrottledError);
    expect(busy).toMatchObject({ code: "model_http_503", retryAfterMs: 1000 });
  });

  it("turns 5xx, timeouts, refused connections and off-contract answers into retryable errors", async () => {
    await expect(call("broken")).rejects.toMatchObject({ code: "model_http_503" });
    await expect(call("slow", { timeoutMs: 100 })).rejects.toMatchObject({ code: "model_timeout" });
    await expect(call("garbage")).rejects.toMatchObject({ code: "model_bad_response" });
    await expect(call("offContract")).rejects.toBeInstanceOf(ModelUnavailableError);
    const closed = new HttpModelInvoker({ url: "http://127.0.0.1:1/invocations" });
    await expect(closed.invoke({ bucket: "b", key: "ok" }, new AbortController().signal)).rejects.toMatchObject({
      code: "model_unreachable",
    });
  });

  it("turns a 4xx refusal into a permanent error", async () => {
    await expect(call("refused")).rejects.toBeInstanceOf(ModelRejectedError);
  });
});
