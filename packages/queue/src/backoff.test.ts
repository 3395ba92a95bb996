import { describe, expect, it } from "vitest";
import { fullJitterBackoff, sleep } from "./backoff.js";

const top = (): number => 0.999999;

describe("fullJitterBackoff", () => {
  it("doubles its ceiling each attempt up to the cap", () => {
    const opts = { base: 5, cap: 60, random: top };
    expect(fullJitterBackoff(1, opts)).toBeCloseTo(5, 3);
    expect(fullJitterBackoff(2, opts)).toBeCloseTo(10, 3);
    expect(fullJitterBackoff(3, opts)).toBeCloseTo(20, 3);
    expect(fullJitterBackoff(4, opts)).toBeCloseTo(40, 3);
    expect(fullJitterBackoff(5, opts)).toBeCloseTo(60, 3);
    expect(fullJitterBackoff(10_000, opts)).toBeCloseTo(60, 3);
  });

  it("picks anywhere from zero to the ceiling (full jitter)", () => {
    expect(fullJitterBackoff(3, { base: 5, cap: 60, random: () => 0 })).toBe(0);
    expect(fullJitterBackoff(3, { base: 5, cap: 60, random: () => 0.5 })).toBe(10);
    for (let i = 0; i < 200; i++) {
      const d = fullJitterBackoff(4, { base: 1, cap: 100 });
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(8);
    }
  });

  it("treats attempts below one as the first", () => {
    expect(fullJitterBackoff(0, { base: 5, cap: 60, random: top })).toBeCloseTo(5, 3);
    expect(fullJitterBackoff(-3, { base: 5, cap: 60, random: top })).toBeCloseTo(5, 3);
  });
});

describe("sleep", () => {
  it("rejects when its signal aborts", async () => {
    const ac = new AbortController();
    const p = sleep(10_000, ac.signal);
    ac.abort(new Error("stopping"));
    await expect(p).rejects.toThrow();
  });
});
