import { DocumentDetail, IdParams } from "@docpipe/api-contract";
import type { PrismaClient } from "@docpipe/db";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { NotFoundError } from "../errors.js";
import { callerOf } from "../plugins/auth.js";
import { answer, errors, idErrors, keyErrors } from "./responses.js";

/** A row with its Date columns as the API writes timestamps (the rest as they are). */
type Timestamped<T> = { [K in keyof T]: T[K] extends Date ? string : T[K] extends Date | null ? string | null : T[K] };
function withIsoDates<T extends object>(row: T): Timestamped<T> {
  return Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v])) as Timestamped<T>;
}

/** The documents resource: one document with its pages and audit trail, to its owner's keys only. */
export const documentRoutes: FastifyPluginAsyncZod<{ prisma: PrismaClient }> = async (app, { prisma }) => {
  app.get(
    "/documents/:id",
    {
      schema: {
        operationId: "getDocument",
        summary: "A document, its pages with result summaries, and its audit trail",
        params: IdParams,
        response: { 200: answer("The document", DocumentDetail), ...errors({ ...keyErrors, ...idErrors("document") }) },
      },
    },
    async (request) => {
      const { id } = request.params;
      const document = await prisma.document.findFirst({
        where: { id, batch: { owner: callerOf(request).owner } },
        include: {
          pages: {
            orderBy: { pageNumber: "asc" },
            include: { result: { select: { modelName: true, modelVersion: true, features: true, latencyMs: true, createdAt: true } } },
          },
          auditEvents: { orderBy: [{ createdAt: "asc" }, { id: "asc" }] },
        },
      });
      if (!document) throw new NotFoundError("document", id);
      const { auditEvents, pages, size, ...rest } = document;
      return {
        ...withIsoDates(rest),
        size: size === null ? null : Number(size),
        pages: pages.map(({ result, ...page }) => ({ ...withIsoDates(page), result: result && withIsoDates(result) })),
        auditTrail: auditEvents.map((a) => ({ ...withIsoDates(a), id: a.id.toString() })),
      };
    },
  );
};
