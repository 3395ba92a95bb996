// Load test of the ingestion API's rate regulation: one key is driven at ten times its plan's
// rate for 30 seconds over loopback, through two ingestion instances on two database clients
// (two "processes" sharing the key's token bucket in Postgres). Checks that the accepted rate
// stays within 10% of the plan and that every rejection is a 429 with Retry-After; prints
// the latency of accepted requests.
//   pnpm bench:api
//   BENCH_API_RATE=20 BENCH_API_SECONDS=30 BENCH_API_FACTOR=10 BENCH_API_INSTANCES=2 pnpm bench:api
import { createPrisma } from "../../packages/db/src/index.ts";
import { start } from "../../packages/local-stack/src/index.ts";
import { createLogger } from "../../packages/queue/src/index.ts";
import { createApiKey, upsertPlan } from "../../packages/api-keys/src/index.ts";
import { createIngestionService, type IngestionService } from "../../services/ingestion/src/index.ts";
import { table } from "./common.ts";

const rate = Number(process.env.BENCH_API_RATE ?? 20);
const seconds = Number(process.env.BENCH_API_SECONDS ?? 30);
const factor = Number(process.env.BENCH_API_FACTOR ?? 10);
const instances = Number(process.env.BENCH_API_INSTANCES ?? 2);
/** Bound on requests in flight: the generator never piles up more than this (loopback, bounded). */
const maxInFlight = Number(process.env.BENCH_API_MAX_IN_FLIGHT ?? 64);
// One second of burst: a client that was idle may send that many at once.
const burst = Math.max(1, Math.round(rate));

const logger = createLogger({ service: "bench-api", level: process.env.LOG_LEVEL ?? "warn" });

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function main(): Promise<void> {
  const stack = await start({ name: "bench-api", ephemeral: true, logger });
  const services: IngestionService[] = [];
  const clients = [stack.prisma];
  try {
    for (let i = 1; i < instances; i++) clients.push(createPrisma({ databaseUrl: stack.databaseUrl, poolMax: 10 }));
    const urls: string[] = [];
    for (const prisma of clients) {
      const svc = createIngestionService({
        prisma,
        s3: stack.s3,
        sqs: stack.sqs,
        queueUrls: stack.queueUrls,
        workBucket: stack.workBucket,
        logger,
        port: 0,
        host: "127.0.0.1",
        resumeOnStart: false,
      });
      services.push(svc);
      urls.push(await svc.start());
    }
    await upsertPlan(stack.prisma, { name: "bench", ratePerSecond: rate, burst, quotaDocuments: null, quotaPeriod: "day" });
    const { key } = await createApiKey(stack.prisma, { name: "bench", owner: "bench", plan: "bench", buckets: ["*"] });

    const target = rate * factor;
    const total = Math.round(target * seconds);
    const interval = 1000 / target;
    console.log(
      `plan: ${rate}/s, burst ${burst}; offering ${target}/s for ${seconds} s (${total} GET /usage) ` +
        `through ${instances} ingestion instance(s), at most ${maxInFlight} in flight`,
    );

    const accepted: { at: number; ms: number }[] = [];
    const rejectedMs: number[] = [];
    let rejectedWithoutRetryAfter = 0;
    const other = new Map<string, number>();
    let skipped = 0;
    let inFlight = 0;
    const pending: Promise<void>[] = [];
    const t0 = performance.now();
    for (let i = 0; i < total; i++) {
      const due = t0 + i * interval;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (inFlight >= maxInFlight) {
        skipped++;
        continue;
      }
      inFlight++;
      const sent = performance.now();
      pending.push(
        fetch(`${urls[i % urls.length]}/usage`, { headers: { "x-api-key": key } })
          .then(async (res) => {
            await res.arrayBuffer();
            const ms = performance.now() - sent;
            if (res.status === 200) accepted.push({ at: sent - t0, ms });
            else if (res.status === 429) {
              rejectedMs.push(ms);
              const ra = res.headers.get("retry-after");
              if (!ra || !(Number(ra) >= 1)) rejectedWithoutRetryAfter++;
            } else other.set(String(res.status), (other.get(String(res.status)) ?? 0) + 1);
          })
          .catch((e: Error) => {
            other.set(e.name, (other.get(e.name) ?? 0) + 1);
          })
          .finally(() => {
            inFlight--;
          }),
      );
    }
    await Promise.all(pending);
    const elapsed = (performance.now() - t0) / 1000;

    const acceptedRate = accepted.length / seconds;
    // The burst is spent once at the start; what the plan promises after it is `rate`.
    const steady = accepted.filter((a) => a.at >= 2000).length / (seconds - 2);
    const plannedTotal = burst + rate * seconds;
    const latencies = accepted.map((a) => a.ms).sort((a, b) => a - b);
    const rej = [...rejectedMs].sort((a, b) => a - b);
    const within = Math.abs(accepted.length - plannedTotal) / plannedTotal <= 0.1 && Math.abs(steady - rate) / rate <= 0.1;

    table([
        ["offered", "sent", "skipped (in-flight bound)", "accepted", "429", "429 without Retry-After", "other", "elapsed s"],
        [
          `${target}/s`,
          total - skipped,
          skipped,
          accepted.length,
          rejectedMs.length,
          rejectedWithoutRetryAfter,
          [...other].map(([k, v]) => `${k}:${v}`).join(" ") || "0",
          elapsed.toFixed(1),
        ],
    ]);
    table([
        ["plan rate", "accepted/s (whole run)", "accepted/s after the burst (t ≥ 2 s)", "plan allows (burst + rate × s)", "within 10%"],
        [`${rate}/s`, acceptedRate.toFixed(2), steady.toFixed(2), plannedTotal, within ? "yes" : "NO"],
    ]);
    table([
        ["latency ms", "p50", "p90", "p99", "max"],
        ["accepted", pct(latencies, 50).toFixed(1), pct(latencies, 90).toFixed(1), pct(latencies, 99).toFixed(1), (latencies.at(-1) ?? NaN).toFixed(1)],
        ["rejected (429)", pct(rej, 50).toFixed(1), pct(rej, 90).toFixed(1), pct(rej, 99).toFixed(1), (rej.at(-1) ?? NaN).toFixed(1)],
    ]);
    const usage = await stack.prisma.usageDaily.findMany();
    console.log(`metered: ${usage.map((u) => `requests ${u.requests}, throttled ${u.throttled}`).join("; ")}`);
    if (!within || rejectedWithoutRetryAfter > 0 || other.size > 0) process.exitCode = 1;
  } finally {
    for (const s of services) await s.stop();
    for (const c of clients.slice(1)) await c.$disconnect();
    await stack.stop();
  }
}

await main();
