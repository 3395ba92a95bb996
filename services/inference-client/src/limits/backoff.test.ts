import { describe, expect, it } from "vitest";
import { parseRetryAfterMs, retryDelayMs } from "./backoff.js";

describe("full-jitter backoff", () => {
  it("grows the window exponentially up to the cap", () => {
    const max = () => 0.999999;
    const windows = [0, 1, 2, 3, 4, 5, 6].map((a) => retryDelayMs(a, { baseMs: 100, capMs: 2000 }, undefined, max));
    expect(windows).toEqual([99, 199, 399, 799, 1599, 1999, 1999]);
  });

  it("draws uniformly from the whole window, down to zero", () => {
    expect(retryDelayMs(3, { baseMs: 100, capMs: 10_000 }, undefined, () => 0)).toBe(0);
    expect(retryDelayMs(3, { baseMs: 100, capMs: 10_000 }, undefined, () => 0.5)).toBe(400);
  });

  it("waits at least as long as Retry-After asks", () => {
    expect(retryDelayMs(0, { baseMs: 100, capMs: 10_000 }, 3000, () => 0.5)).toBe(3000);
    expect(retryDelayMs(5, { baseMs: 100, capMs: 10_000 }, 10, () => 0.5)).toBe(1600);
  });

  it("parses Retry-After as seconds or as an HTTP date", () => {
    expect(parseRetryAfterMs("2")).toBe(2000);
    expect(parseRetryAfterMs("0.5")).toBe(500);
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfterMs("Thu, 01 Jan 2026 00:00:05 GMT", now)).toBe(5000);
    expect(parseRetryAfterMs("soon")).toBeUndefined();
    expect(parseRetryAfterMs(null)).toBeUndefined();
  });
});
