import { ConfigError } from "@docpipe/queue";
import { describe, expect, it } from "vitest";
import { buildModelInvoker, loadConfig } from "./config.js";

const base = { DATABASE_URL: "postgres://u:p@localhost:5432/docpipe", WORK_BUCKET: "docpipe-work" };

describe("inference-client config", () => {
  it("applies the documented defaults", async () => {
    const c = loadConfig({ ...base, MODEL_URL: "http://127.0.0.1:8080/invocations" });
    expect(c).toMatchObject({
      MODEL_MAX_CONCURRENCY: 4,
      MODEL_RATE_PER_SECOND: 20,
      MODEL_BURST: 10,
      MODEL_MAX_ATTEMPTS: 5,
      BREAKER_FAILURE_THRESHOLD: 5,
      BREAKER_COOLDOWN_MS: 30_000,
      MODEL_TIMEOUT_MS: 30_000,
    });
    expect((await buildModelInvoker(c)).description).toBe("POST http://127.0.0.1:8080/invocations");
  });

  it("uses SageMaker InvokeEndpoint when an endpoint name is set", async () => {
    const c = loadConfig({ ...base, SAGEMAKER_ENDPOINT_NAME: "docpipe-model" });
    expect((await buildModelInvoker(c)).description).toBe("SageMaker endpoint docpipe-model");
  });

  it("names the variable that is missing or wrong", () => {
    expect(() => loadConfig(base)).toThrow(/MODEL_URL: set MODEL_URL/);
    expect(() => loadConfig({ ...base, MODEL_URL: "x", MODEL_MAX_CONCURRENCY: "0" })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, MODEL_URL: "http://m/", MODEL_MAX_CONCURRENCY: "0" })).toThrow(/MODEL_MAX_CONCURRENCY/);
    expect(() => loadConfig({ ...base, SAGEMAKER_ENDPOINT_NAME: "m", MODEL_API_KEY_SECRET: "docpipe/key" })).toThrow(/MODEL_API_KEY_SECRET: MODEL_API_KEY_SECRET goes with MODEL_URL/);
  });
});
