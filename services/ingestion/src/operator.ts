import type { Logger } from "@docpipe/queue";
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from "fastify";
import { HttpError, NotFoundError, ValidationError } from "./errors.js";
import { retryFailed, RetryError, type RetryDeps } from "./retry.js";
import { IdParams, issuesToDetails } from "@docpipe/api-contract";

/** Options of the operator routes, a subset of the app's: what a retry needs. */
export type OperatorOptions = Omit<RetryDeps, "chunkSize">;

/**
 * Routes for the person running the pipeline:
 *
 * - `POST /batches/:id/retry-failed`: re-runs the batch's failed documents (or only their failed
 *   pages), answers `202` with what was re-sent. Idempotent: a second call finds nothing failed.
 */
export function registerOperatorRoutes<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, L>,
  opts: OperatorOptions,
): void {
  const { prisma } = opts;

  app.post("/batches/:id/retry-failed", {
    schema: {
      summary: "Re-run the batch's failed documents (or only their failed pages); 202 with what was re-sent, per failure code",
      params: { type: "object", properties: { id: { type: "string", format: "uuid" } }, required: ["id"] },
    },
  }, async (request, reply) => {
    const params = IdParams.safeParse(request.params);
    if (!params.success) throw new ValidationError("invalid request path", issuesToDetails(params.error));
    const id = params.data.id;
    // With API keys on, a batch is visible to its owner's keys only; another owner's id is a 404.
    const owner = (request as { caller?: { owner: string } | null }).caller?.owner;
    const batch = await prisma.batch.findFirst({ where: { id, ...(owner !== undefined && { owner }) }, select: { state: true } });
    if (!batch) throw new NotFoundError("batch", id);
    if (batch.state === "failed") {
      throw new HttpError(409, "batch_failed", `batch ${id} failed as a whole (its listing did not finish); submit it again instead`, { id });
    }
    try {
      const result = await retryFailed({ ...opts, logger: request.log as Logger }, id);
      return reply.code(202).send({
        ...result,
        ...(result.expectedToFailAgain > 0 && {
          note:
            `${result.expectedToFailAgain} of the retried documents failed because of their content (not a PDF, encrypted, corrupt…); ` +
            "they will fail again with the same reason unless their objects were replaced",
        }),
      });
    } catch (e) {
      if (e instanceof RetryError) throw new HttpError(503, "queue_unavailable", e.message, e.partial, { cause: e });
      throw e;
    }
  });
}
