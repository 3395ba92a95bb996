import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";

const base = { DATABASE_URL: "postgres://u:p@localhost:5432/docpipe", WORK_BUCKET: "docpipe-work" };

describe("page-converter config", () => {
  it("renders at 150 DPI under a 50-megapixel cap by default", () => {
    expect(loadConfig(base)).toMatchObject({ DPI: 150, MAX_PIXELS: 50_000_000, RENDER_TIMEOUT_MS: 60_000, RENDER_THREADS: 0 });
  });

  it("names a bad variable", () => {
    expect(() => loadConfig({ ...base, DPI: "high" })).toThrow(/DPI/);
    expect(() => loadConfig({ ...base, MAX_PIXELS: "0" })).toThrow(/MAX_PIXELS must be at least 1/);
  });
});
