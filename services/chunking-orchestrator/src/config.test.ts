import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";

const base = { DATABASE_URL: "postgres://u:p@localhost:5432/docpipe", WORK_BUCKET: "docpipe-work" };

describe("orchestrator config", () => {
  it("applies the documented defaults", () => {
    expect(loadConfig(base)).toMatchObject({
      LARGE_SIZE_BYTES: 10 * 1024 * 1024,
      LARGE_PAGE_COUNT: 10,
      MAX_PAGES: 100_000,
      CONCURRENCY: 4,
    });
  });

  it("parses thresholds and names a bad variable", () => {
    expect(loadConfig({ ...base, LARGE_SIZE_BYTES: "1048576", LARGE_PAGE_COUNT: "20" })).toMatchObject({
      LARGE_SIZE_BYTES: 1_048_576,
      LARGE_PAGE_COUNT: 20,
    });
    expect(() => loadConfig({ ...base, LARGE_PAGE_COUNT: "-3" })).toThrow(/LARGE_PAGE_COUNT must be at least 1/);
    expect(() => loadConfig({ ...base, LARGE_SIZE_BYTES: "ten megs" })).toThrow(/LARGE_SIZE_BYTES/);
  });
});
