import { describe, expect, it } from "vitest";
import { z } from "zod";
import { commonEnv, ConfigError, intEnv, loadEnv } from "./config.js";

describe("loadEnv", () => {
  it("names each bad variable and how to fix it", () => {
    expect(() => loadEnv(commonEnv, { DATABASE_URL: "mysql://x" })).toThrowError(ConfigError);
    try {
      loadEnv(commonEnv, { DATABASE_URL: "mysql://x" });
    } catch (e) {
      expect((e as Error).message).toContain("DATABASE_URL must start with postgres://");
      expect((e as Error).message).toContain("WORK_BUCKET is required");
    }
  });

  it("refuses a staging bucket that is the work bucket, in every service's schema", () => {
    const env = { DATABASE_URL: "postgres://u@h/db", WORK_BUCKET: "docpipe-work" };
    expect(loadEnv(commonEnv, { ...env, STAGING_BUCKET: "docpipe-staging" }).STAGING_BUCKET).toBe("docpipe-staging");
    const service = commonEnv.extend({ PORT: z.coerce.number().default(8080) });
    expect(() => loadEnv(service, { ...env, STAGING_BUCKET: "docpipe-work" })).toThrowError(/STAGING_BUCKET: must not be WORK_BUCKET \(docpipe-work\)/);
  });

  it("applies defaults and service extensions", () => {
    const env = loadEnv(commonEnv.extend({ DPI: z.coerce.number().default(150) }), {
      DATABASE_URL: "postgres://u@h/db",
      WORK_BUCKET: "work",
      S3_FORCE_PATH_STYLE: "true",
    });
    expect(env).toMatchObject({ AWS_REGION: "us-east-1", S3_FORCE_PATH_STYLE: true, DPI: 150, QUEUE_PREFIX: "" });
  });
});

describe("intEnv", () => {
  const schema = z.object({
    PORT: intEnv("PORT", { min: 1, max: 65_535, default: 8080 }),
    THREADS: intEnv("THREADS", { min: 0 }),
  });

  it("coerces the string, applies the default, and leaves an optional one unset", () => {
    expect(loadEnv(schema, {})).toEqual({ PORT: 8080 });
    expect(loadEnv(schema, { PORT: "9000", THREADS: "0" })).toEqual({ PORT: 9000, THREADS: 0 });
  });

  it("names the variable and the bound it broke", () => {
    expect(() => loadEnv(schema, { PORT: "0" })).toThrow(/PORT: PORT must be at least 1/);
    expect(() => loadEnv(schema, { PORT: "70000" })).toThrow(/PORT must be at most 65535/);
    expect(() => loadEnv(schema, { PORT: "1.5" })).toThrow(/PORT must be a whole number/);
    expect(() => loadEnv(schema, { THREADS: "many" })).toThrow(/THREADS must be a whole number/);
    expect(() => loadEnv(schema, { THREADS: "-1" })).toThrow(/THREADS must be at least 0/);
  });
});
