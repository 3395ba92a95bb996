import { describe, expect, it } from "vitest";
import { ManualClock } from "./clock.js";
import { TokenBucket } from "./token-bucket.js";

describe("TokenBucket", () => {
  it("allows a burst, then the steady rate", async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSecond: 10, burst: 3, clock });
    expect([bucket.tryTake(), bucket.tryTake(), bucket.tryTake(), bucket.tryTake()]).toEqual([true, true, true, false]);
    expect(bucket.msUntilToken()).toBe(100);
    await clock.advance(99);
    expect(bucket.tryTake()).toBe(false);
    await clock.advance(1);
    expect(bucket.tryTake()).toBe(true);
    expect(bucket.tryTake()).toBe(false);
  });

  it("never holds more than the burst after a long quiet spell", async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSecond: 100, burst: 2, clock });
    await clock.advance(60_000);
    expect(bucket.available).toBe(2);
  });

  it("take() waits for the next token and grants at the steady rate", async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSecond: 5, burst: 1, clock });
    const grantedAt: number[] = [];
    const takers = [0, 1, 2, 3].map(() => bucket.take().then(() => grantedAt.push(clock.now())));
    await clock.advance(0);
    expect(grantedAt).toEqual([0]);
    await clock.advance(1000);
    await Promise.all(takers);
    expect(grantedAt).toEqual([0, 200, 400, 600]);
  });

  it("take() rejects when its signal aborts", async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSecond: 1, burst: 1, clock });
    bucket.tryTake();
    const ac = new AbortController();
    const p = bucket.take(ac.signal);
    ac.abort(new Error("stopping"));
    await expect(p).rejects.toThrow("stopping");
  });

  it("rate 0 means no limit", () => {
    const bucket = new TokenBucket({ ratePerSecond: 0, clock: new ManualClock() });
    for (let i = 0; i < 1000; i++) expect(bucket.tryTake()).toBe(true);
  });
});
