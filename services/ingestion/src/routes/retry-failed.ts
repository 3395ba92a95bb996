import { IdParams, RetryFailedResponse } from "@docpipe/api-contract";
import type { Logger } from "@docpipe/queue";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { HttpError, NotFoundError } from "../errors.js";
import { callerOf } from "../plugins/auth.js";
import { retryFailed, RetryError, type RetryDeps } from "../retry/retry.js";
import { answer, errors, idErrors, keyErrors } from "./responses.js";

/** Options of the operator routes: what a retry needs. */
export type RetryRoutesOptions = Omit<RetryDeps, "chunkSize">;

/**
 * `POST /batches/:id/retry-failed`, for the person running the pipeline: re-runs the batch's
 * failed documents (or only their failed pages), answers `202` with what was re-sent.
 * Idempotent: a second call finds nothing failed.
 */
export const retryFailedRoutes: FastifyPluginAsyncZod<RetryRoutesOptions> = async (app, opts) => {
  app.post(
    "/batches/:id/retry-failed",
    {
      schema: {
        operationId: "retryFailedDocuments",
        summary: "Re-run the batch's failed documents (or only their failed pages)",
        description: "Answers 202 with what was re-sent, per failure code. A second call finds nothing left to retry.",
        params: IdParams,
        response: {
          202: answer("Re-sent; the documents are processing again", RetryFailedResponse),
          ...errors({
            ...keyErrors,
            ...idErrors("batch"),
            409: "`batch_failed`: the batch failed as a whole (its listing did not finish); submit it again instead",
            503: "`queue_unavailable`: the messages could not be sent; the documents are still failed, try again",
          }),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const batch = await opts.prisma.batch.findFirst({ where: { id, owner: callerOf(request).owner }, select: { state: true } });
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
    },
  );
};
