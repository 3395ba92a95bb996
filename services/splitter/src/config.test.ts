import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";

const base = { DATABASE_URL: "postgres://u:p@localhost:5432/docpipe", WORK_BUCKET: "docpipe-work" };

describe("splitter config", () => {
  it("requires ROLE and says what it must be", () => {
    expect(() => loadConfig(base)).toThrow(/ROLE.*large.*small/);
    expect(() => loadConfig({ ...base, ROLE: "medium" })).toThrow(/ROLE/);
  });

  it("applies the documented defaults", () => {
    const c = loadConfig({ ...base, ROLE: "large" });
    expect(c).toMatchObject({ ROLE: "large", CHUNK_PAGES: 10, MAX_PAGES: 100_000 });
    expect(c.CONCURRENCY).toBeUndefined();
  });

  it("parses numbers and rejects nonsense naming the variable", () => {
    expect(loadConfig({ ...base, ROLE: "small", CHUNK_PAGES: "5", CONCURRENCY: "3" })).toMatchObject({ CHUNK_PAGES: 5, CONCURRENCY: 3 });
    expect(() => loadConfig({ ...base, ROLE: "small", CHUNK_PAGES: "0" })).toThrow(/CHUNK_PAGES must be at least 1/);
    expect(() => loadConfig({ ...base, ROLE: "small", MAX_PAGES: "lots" })).toThrow(/MAX_PAGES/);
  });

  it("lowers NATIVE_SPLIT_MIN_BYTES, never past 2 GiB", () => {
    expect(loadConfig({ ...base, ROLE: "large" }).NATIVE_SPLIT_MIN_BYTES).toBeUndefined();
    expect(loadConfig({ ...base, ROLE: "large", NATIVE_SPLIT_MIN_BYTES: "1024" }).NATIVE_SPLIT_MIN_BYTES).toBe(1024);
    expect(() => loadConfig({ ...base, ROLE: "large", NATIVE_SPLIT_MIN_BYTES: String(2 ** 32) })).toThrow(/NATIVE_SPLIT_MIN_BYTES must be at most 2147483648/);
  });
});
