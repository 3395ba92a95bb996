import { ConfigError } from "@docpipe/queue";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";

const base = { DATABASE_URL: "postgresql://u:p@db:5432/docpipe", WORK_BUCKET: "docpipe-work" };

describe("loadConfig", () => {
  it("applies the defaults", () => {
    expect(loadConfig(base)).toMatchObject({
      PORT: 8080,
      HOST: "0.0.0.0",
      BODY_LIMIT_BYTES: 65_536,
      LIST_PAGE_SIZE: 1000,
      MAX_CONCURRENT_LISTINGS: 2,
      SEND_PARALLELISM: 8,
      DATABASE_POOL_MAX: 10,
    });
  });

  it("reads numbers from strings and names each bad variable", () => {
    expect(loadConfig({ ...base, PORT: "3000", LIST_PAGE_SIZE: "50" })).toMatchObject({ PORT: 3000, LIST_PAGE_SIZE: 50 });
    expect(() => loadConfig({ ...base, LIST_PAGE_SIZE: "5000", PORT: "http" })).toThrowError(ConfigError);
    try {
      loadConfig({ ...base, LIST_PAGE_SIZE: "5000", PORT: "http" });
    } catch (e) {
      expect((e as Error).message).toContain("LIST_PAGE_SIZE must be at most 1000");
      expect((e as Error).message).toContain("PORT");
    }
  });
});
