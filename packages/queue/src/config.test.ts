import { describe, expect, it } from "vitest";
import { z } from "zod";
import { commonEnv, ConfigError, loadEnv } from "./config.js";

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

  it("applies defaults and service extensions", () => {
    const env = loadEnv(commonEnv.extend({ DPI: z.coerce.number().default(150) }), {
      DATABASE_URL: "postgres://u@h/db",
      WORK_BUCKET: "work",
      S3_FORCE_PATH_STYLE: "true",
    });
    expect(env).toMatchObject({ AWS_REGION: "us-east-1", S3_FORCE_PATH_STYLE: true, DPI: 150, QUEUE_PREFIX: "" });
  });
});
