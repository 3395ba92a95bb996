import { describe, expect, it } from "vitest";
import { MessageRejectedError } from "./errors.js";
import { MAX_BATCH_BYTES, planBatches } from "./producer.js";

describe("planBatches", () => {
  it("splits by entry count, keeping order", () => {
    const bodies = Array.from({ length: 23 }, (_, i) => `{"i":${i}}`);
    const batches = planBatches(bodies);
    expect(batches.map((b) => b.length)).toEqual([10, 10, 3]);
    expect(batches.flat()).toEqual(bodies.map((_, i) => i));
  });

  it("splits by total bytes before the count limit is reached", () => {
    const big = "x".repeat(100_000);
    const batches = planBatches([big, big, big, "small", big]);
    // 2 × 100 000 fits in 262 144; a third would not.
    expect(batches).toEqual([[0, 1], [2, 3, 4]]);
    for (const b of batches) {
      const bytes = b.reduce((n, i) => n + Buffer.byteLength([big, big, big, "small", big][i]!), 0);
      expect(bytes).toBeLessThanOrEqual(MAX_BATCH_BYTES);
    }
  });

  it("counts UTF-8 bytes, not UTF-16 code units", () => {
    // 'é' is one code unit but two bytes: 60 of them are 120 bytes.
    const body = "é".repeat(60);
    expect(planBatches([body, body], { maxBytes: 200 })).toEqual([[0], [1]]);
    expect(planBatches([body, body], { maxBytes: 240 })).toEqual([[0, 1]]);
  });

  it("puts a body of exactly the limit alone and rejects a bigger one", () => {
    expect(planBatches(["a", "x".repeat(MAX_BATCH_BYTES), "b"])).toEqual([[0], [1], [2]]);
    expect(() => planBatches(["a", "x".repeat(MAX_BATCH_BYTES + 1)])).toThrow(MessageRejectedError);
  });

  it("plans nothing for no bodies", () => {
    expect(planBatches([])).toEqual([]);
  });
});
