import { commonEnv, ConfigError, loadEnv, runService, type ServiceDeps, type CommonEnv } from "@docpipe/queue";
import { describe, expect, test } from "../fixtures/index.js";
import { waitFor } from "../fixtures/wait.js";

const loadConfig = (env: Record<string, string | undefined>) => loadEnv(commonEnv, env);

describe("runService", () => {
  test("builds the service with clients for the configured stack, starts it, and stops it and them on a signal", async ({ env, stack }) => {
    const events: string[] = [];
    let deps: ServiceDeps<CommonEnv> | undefined;
    const run = runService({
      name: "probe",
      env: { ...env, LOG_LEVEL: "silent" },
      loadConfig,
      signals: ["SIGUSR2"],
      build: (d) => {
        deps = d;
        return {
          start: () => void events.push("start"),
          stop: async () => void events.push(`stop with ${await d.prisma.batch.count()} batches`),
        };
      },
    });
    await waitFor("the service to start", () => events.length > 0, { timeoutMs: 5_000, intervalMs: 50 });
    expect(events).toEqual(["start"]);
    expect(deps!.queueUrls).toEqual(stack.queueUrls);
    expect(deps!.config.WORK_BUCKET).toBe(stack.workBucket);

    process.kill(process.pid, "SIGUSR2");
    await run;
    expect(events).toEqual(["start", "stop with 0 batches"]);
    // Nothing is left listening for the signal.
    expect(process.listenerCount("SIGUSR2")).toBe(0);
  });

  test("rejects with the configuration error, naming the variable, before building anything", async () => {
    let built = false;
    const run = runService({
      name: "probe",
      env: { WORK_BUCKET: "docpipe-work" },
      loadConfig,
      build: () => {
        built = true;
        return { start: () => undefined, stop: async () => undefined };
      },
    });
    await expect(run).rejects.toThrow(ConfigError);
    await expect(run).rejects.toThrow(/DATABASE_URL is required/);
    expect(built).toBe(false);
  });
});
