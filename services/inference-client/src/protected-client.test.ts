import { createMetrics } from "@docpipe/queue";
import { describe, expect, it } from "vitest";
import { ManualClock, flushMicrotasks } from "./limits/clock.js";
import { ModelRejectedError, ModelThrottledError, ModelUnavailableError } from "./model/errors.js";
import type { ModelInvoker, ModelRequest, ModelResponse } from "./model/invoker.js";
import { ProtectedModelClient } from "./protected-client.js";

const ok: ModelResponse = { model: { name: "m", version: "1" }, output: {}, features: ["ink"] };
const req: ModelRequest = { bucket: "b", key: "k" };
const never = new AbortController().signal;

/** An endpoint whose answers the test scripts; calls wait until the test lets them go. */
class ScriptedEndpoint implements ModelInvoker {
  readonly description = "scripted";
  inFlight = 0;
  maxInFlight = 0;
  calls = 0;
  private pending: (() => void)[] = [];
  constructor(
    private readonly answer: (call: number) => ModelResponse | Error,
    private readonly hold = false,
  ) {}
  async invoke(): Promise<ModelResponse> {
    const n = ++this.calls;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.hold) await new Promise<void>((r) => this.pending.push(r));
      const a = this.answer(n);
      if (a instanceof Error) throw a;
      return a;
    } finally {
      this.inFlight--;
    }
  }
  releaseAll(): void {
    const p = this.pending;
    this.pending = [];
    p.forEach((r) => r());
  }
}

const down = () => new ModelUnavailableError("model_http_503", "down", { status: 503 });
const throttled = (retryAfterMs?: number) =>
  new ModelThrottledError("model_throttled", "429", { status: 429, ...(retryAfterMs !== undefined && { retryAfterMs }) });

describe("ProtectedModelClient", () => {
  it("retries throttling, waiting exactly Retry-After, and ends in success", async () => {
    const clock = new ManualClock();
    const endpoint = new ScriptedEndpoint((n) => (n <= 2 ? throttled(1000) : ok));
    const client = new ProtectedModelClient(endpoint, { clock, random: () => 0, ratePerSecond: 0 });
    let done: unknown;
    void client.invoke(req, never).then((r) => (done = r));
    await clock.advance(999);
    expect(endpoint.calls).toBe(1);
    await clock.advance(1);
    expect(endpoint.calls).toBe(2);
    await clock.advance(1000);
    expect(done).toMatchObject({ response: ok, calls: 3 });
  });

  it("takes throttling as back-pressure: however long it lasts, no breaker opens and no attempt is used up", async () => {
    const clock = new ManualClock();
    // Twenty 429s in a row, against a breaker that opens after 2 failures and 2 attempts per page.
    const endpoint = new ScriptedEndpoint((n) => (n <= 20 ? throttled(500) : ok));
    const client = new ProtectedModelClient(endpoint, { clock, random: () => 0, ratePerSecond: 0, maxAttempts: 2, breakerFailureThreshold: 2 });
    let done: unknown;
    void client.invoke(req, never).then((r) => (done = r));
    await clock.advance(20 * 500);
    expect(done).toMatchObject({ response: ok, calls: 21 });
    expect(client.breaker.openCount).toBe(0);
  });

  it("backs off (full jitter, growing) after a 429 without Retry-After", async () => {
    const clock = new ManualClock();
    const endpoint = new ScriptedEndpoint((n) => (n <= 3 ? throttled() : ok));
    // random 0.99: each wait is just under its ceiling, 200, 400, 800 ms.
    const client = new ProtectedModelClient(endpoint, { clock, random: () => 0.99, ratePerSecond: 0, backoff: { baseMs: 200, capMs: 10_000 } });
    let done: unknown;
    void client.invoke(req, never).then((r) => (done = r));
    await clock.advance(197);
    expect(endpoint.calls).toBe(1);
    await clock.advance(1);
    expect(endpoint.calls).toBe(2);
    await clock.advance(395);
    expect(endpoint.calls).toBe(2);
    await clock.advance(1);
    expect(endpoint.calls).toBe(3);
    await clock.advance(792);
    expect(endpoint.calls).toBe(4);
    expect(done).toMatchObject({ calls: 4 });
  });

  it("counts 5xx between 429s as consecutive: throttling neither opens the breaker nor hides an outage", async () => {
    const clock = new ManualClock();
    const answers = [down(), throttled(100), down()];
    const endpoint = new ScriptedEndpoint((n) => answers[n - 1] ?? ok);
    const client = new ProtectedModelClient(endpoint, { clock, random: () => 0, ratePerSecond: 0, breakerFailureThreshold: 2, breakerCooldownMs: 5_000 });
    void client.invoke(req, never);
    await clock.advance(100);
    expect(endpoint.calls).toBe(3);
    expect(client.breaker.state).toBe("open");
    await clock.advance(5_000);
    expect(client.breaker.state).toBe("closed");
  });

  it("never has more calls in flight than the cap", async () => {
    const endpoint = new ScriptedEndpoint(() => ok, true);
    const client = new ProtectedModelClient(endpoint, { maxConcurrency: 3, ratePerSecond: 0, clock: new ManualClock() });
    const all = Promise.all(Array.from({ length: 10 }, () => client.invoke(req, never)));
    for (let i = 0; i < 10; i++) {
      await flushMicrotasks();
      expect(endpoint.inFlight).toBeLessThanOrEqual(3);
      endpoint.releaseAll();
    }
    await all;
    expect(endpoint.calls).toBe(10);
    expect(endpoint.maxInFlight).toBe(3);
  });

  it("sends no faster than the token bucket allows", async () => {
    const clock = new ManualClock();
    const endpoint = new ScriptedEndpoint(() => ok);
    const client = new ProtectedModelClient(endpoint, { ratePerSecond: 10, burst: 2, maxConcurrency: 10, clock });
    const all = Promise.all(Array.from({ length: 6 }, () => client.invoke(req, never)));
    await clock.advance(0);
    expect(endpoint.calls).toBe(2);
    await clock.advance(100);
    expect(endpoint.calls).toBe(3);
    await clock.advance(300);
    await all;
    expect(endpoint.calls).toBe(6);
  });

  it("opens the breaker on repeated failures, holds callers during the cool-down, and recovers through one probe", async () => {
    const clock = new ManualClock();
    let isDown = true;
    const endpoint = new ScriptedEndpoint(() => (isDown ? down() : ok));
    const client = new ProtectedModelClient(endpoint, {
      clock,
      random: () => 0,
      ratePerSecond: 0,
      maxAttempts: 3,
      breakerFailureThreshold: 3,
      breakerCooldownMs: 10_000,
    });
    const results: unknown[] = [];
    const errors: unknown[] = [];
    for (let i = 0; i < 4; i++) void client.invoke(req, never).then((r) => results.push(r), (e) => errors.push(e));
    await clock.advance(0);
    // Three failures open it; the fourth caller never reaches the endpoint.
    expect(client.breaker.state).toBe("open");
    const callsWhenOpened = endpoint.calls;
    expect(callsWhenOpened).toBeLessThanOrEqual(4);
    await clock.advance(9_999);
    expect(endpoint.calls).toBe(callsWhenOpened);
    // Probe fails: open again, one more call only.
    await clock.advance(1);
    expect(endpoint.calls).toBe(callsWhenOpened + 1);
    expect(client.breaker.state).toBe("open");
    isDown = false;
    await clock.advance(10_000);
    await clock.advance(100);
    expect(client.breaker.state).toBe("closed");
    expect(errors).toEqual([]);
    expect(results).toHaveLength(4);
  });

  it("gives up after maxAttempts while the breaker stays closed", async () => {
    const clock = new ManualClock();
    const endpoint = new ScriptedEndpoint(() => down());
    const client = new ProtectedModelClient(endpoint, { clock, random: () => 0, ratePerSecond: 0, maxAttempts: 3, breakerFailureThreshold: 100 });
    const outcome = client.invoke(req, never).catch((e: unknown) => e);
    await clock.advance(0);
    expect(await outcome).toBeInstanceOf(ModelUnavailableError);
    expect(endpoint.calls).toBe(3);
  });

  it("does not retry a page the endpoint refuses, and does not count it against the breaker", async () => {
    const endpoint = new ScriptedEndpoint(() => new ModelRejectedError("model_http_400", "bad page", { status: 400 }));
    const client = new ProtectedModelClient(endpoint, { clock: new ManualClock(), ratePerSecond: 0, breakerFailureThreshold: 1 });
    await expect(client.invoke(req, never)).rejects.toBeInstanceOf(ModelRejectedError);
    expect(endpoint.calls).toBe(1);
    expect(client.breaker.state).toBe("closed");
  });

  it("a wait for the breaker ends when the signal aborts", async () => {
    const clock = new ManualClock();
    const client = new ProtectedModelClient(new ScriptedEndpoint(() => down()), {
      clock,
      ratePerSecond: 0,
      breakerFailureThreshold: 1,
      breakerCooldownMs: 60_000,
      random: () => 0,
    });
    const ac = new AbortController();
    const p = client.invoke(req, ac.signal);
    await clock.advance(0);
    expect(client.breaker.state).toBe("open");
    ac.abort(new Error("stopping"));
    await expect(p).rejects.toThrow("stopping");
  });

  it("reports each answered call's latency, 429s and 5xx apart, and the breaker's state", async () => {
    const clock = new ManualClock();
    const lines: string[] = [];
    const metrics = createMetrics({ service: "inference-client", write: (l) => lines.push(l), flushIntervalSeconds: 0 });
    const endpoint = new ScriptedEndpoint((n) =>
      n === 1 ? new ModelThrottledError("model_throttled", "429", { status: 429 }) : n === 2 ? down() : ok,
    );
    const client = new ProtectedModelClient(endpoint, { clock, random: () => 0, ratePerSecond: 0, breakerFailureThreshold: 3, metrics });
    const outcome = client.invoke(req, never);
    await clock.advance(10_000);
    await outcome;
    metrics.flush();
    const read = () => JSON.parse(lines.at(-1)!) as Record<string, unknown>;
    expect(read()).toMatchObject({ ModelThrottled: 1, ModelServerErrors: 1, ModelLatency: [0], BreakerOpen: 0 });

    // One failure opens this breaker; the gauge says so at the next flush.
    const failing = new ProtectedModelClient(new ScriptedEndpoint(() => down()), { clock, random: () => 0, ratePerSecond: 0, breakerFailureThreshold: 1, metrics });
    const ac = new AbortController();
    const held = failing.invoke(req, ac.signal).catch(() => undefined);
    await clock.advance(0);
    metrics.flush();
    expect(read()).toMatchObject({ BreakerOpen: 1, ModelServerErrors: 1 });
    ac.abort(new Error("stopping"));
    await held;
  });
});
