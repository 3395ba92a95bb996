import { GetQueueAttributesCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { PrismaClient } from "@docpipe/db";
import { coerceError } from "@docpipe/queue";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { ErrorBody } from "../errors.js";
import type { BatchLister } from "../lister.js";
import { answer, errors } from "./responses.js";

export interface HealthRoutesOptions {
  prisma: PrismaClient;
  sqs: SQSClient;
  ingestQueueUrl: string;
  lister: Pick<BatchLister, "stopping">;
  /** How long `/readyz` waits for the database and the queue, in ms. */
  readyTimeoutMs: number;
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const Checks = z.object({ database: z.string(), queue: z.string(), lister: z.string() });

/** Liveness and readiness, for load balancers and orchestrators: no API key. */
export const healthRoutes: FastifyPluginAsyncZod<HealthRoutesOptions> = async (app, opts) => {
  app.get(
    "/healthz",
    {
      config: { public: true },
      schema: {
        operationId: "getHealth",
        summary: "Liveness: the process is up",
        security: [],
        response: { 200: answer("Up", z.object({ status: z.literal("ok") })) },
      },
    },
    async () => ({ status: "ok" as const }),
  );

  app.get(
    "/readyz",
    {
      config: { public: true },
      schema: {
        operationId: "getReadiness",
        summary: "Readiness: the database and the ingest queue answer",
        security: [],
        response: {
          200: answer("Ready", z.object({ status: z.literal("ready"), checks: Checks })),
          ...errors({ 503: "`not_ready`: details name what failed (database, queue, lister)" }),
        },
      },
    },
    async (_request, reply) => {
      const [database, queue] = await Promise.allSettled([
        withTimeout(opts.prisma.$queryRaw`SELECT 1`, opts.readyTimeoutMs, "database"),
        opts.sqs.send(new GetQueueAttributesCommand({ QueueUrl: opts.ingestQueueUrl, AttributeNames: ["QueueArn"] }), {
          abortSignal: AbortSignal.timeout(opts.readyTimeoutMs),
        }),
      ]);
      const describe = (r: PromiseSettledResult<unknown>): string => (r.status === "fulfilled" ? "ok" : coerceError(r.reason).message);
      const checks = { database: describe(database), queue: describe(queue), lister: opts.lister.stopping ? "stopping" : "ok" };
      if (database.status === "fulfilled" && queue.status === "fulfilled" && !opts.lister.stopping) return reply.send({ status: "ready", checks });
      const body: ErrorBody = { error: { code: "not_ready", message: "a dependency is unreachable", details: checks } };
      return reply.code(503).send(body);
    },
  );
};
