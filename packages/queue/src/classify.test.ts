import { describe, expect, it } from "vitest";
import { classByPageCount, defaultThresholds, isLargeBySize } from "./classify.js";

describe("classification thresholds", () => {
  it("treats a file over 10 MiB as large and one at exactly the limit as not", () => {
    expect(isLargeBySize(10 * 1024 * 1024 + 1, defaultThresholds)).toBe(true);
    expect(isLargeBySize(10 * 1024 * 1024, defaultThresholds)).toBe(false);
    expect(isLargeBySize(0, defaultThresholds)).toBe(false);
  });

  it("routes by page count under the size limit", () => {
    expect(classByPageCount(1, defaultThresholds)).toBe("single");
    expect(classByPageCount(2, defaultThresholds)).toBe("small");
    expect(classByPageCount(10, defaultThresholds)).toBe("small");
    expect(classByPageCount(11, defaultThresholds)).toBe("large");
  });

  it("follows configured thresholds", () => {
    const t = { largeSizeBytes: 100, largePageCount: 3 };
    expect(isLargeBySize(101, t)).toBe(true);
    expect(classByPageCount(3, t)).toBe("small");
    expect(classByPageCount(4, t)).toBe("large");
  });
});
