import { ConfigError } from "@docpipe/queue";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";

const base = { DATABASE_URL: "postgres://u:p@localhost/db", WORK_BUCKET: "docpipe-work" };

describe("failsafe config", () => {
  it("defaults to five replays up to SQS's 900 s delay, one render thread and the orchestrator's thresholds", () => {
    const c = loadConfig(base);
    expect([c.FAILSAFE_MAX_REPLAYS, c.FAILSAFE_REPLAY_BASE_SECONDS, c.FAILSAFE_REPLAY_MAX_SECONDS]).toEqual([5, 30, 900]);
    expect([c.FAILSAFE_MAX_ATTEMPTS, c.RENDER_THREADS, c.CONCURRENCY, c.DPI]).toEqual([20, 1, 1, 150]);
    expect([c.LARGE_SIZE_BYTES, c.LARGE_PAGE_COUNT]).toEqual([10 * 1024 * 1024, 10]);
  });

  it("names the variable when a delay is over what SQS allows", () => {
    expect(() => loadConfig({ ...base, FAILSAFE_REPLAY_MAX_SECONDS: "3600" })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, FAILSAFE_REPLAY_MAX_SECONDS: "3600" })).toThrow(/FAILSAFE_REPLAY_MAX_SECONDS must be at most 900/);
    expect(() => loadConfig({ ...base, FAILSAFE_MAX_REPLAYS: "-1" })).toThrow(/FAILSAFE_MAX_REPLAYS must be at least 0/);
  });
});
