import { UsageResponse } from "@docpipe/api-contract";
import { keyUsage, quotaStatus } from "@docpipe/api-keys";
import type { PrismaClient } from "@docpipe/db";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { callerOf } from "../plugins/auth.js";
import { answer, errors, iso, keyErrors } from "./responses.js";

/** The calling key's own plan, quota and metering. */
export const usageRoutes: FastifyPluginAsyncZod<{ prisma: PrismaClient }> = async (app, { prisma }) => {
  app.get(
    "/usage",
    {
      schema: {
        operationId: "getUsage",
        summary: "The calling key's plan, quota and metering per day (last 30 days)",
        response: { 200: answer("The key's usage", UsageResponse), ...errors(keyErrors) },
      },
    },
    async (request) => {
      const caller = callerOf(request);
      const [quota, days] = await Promise.all([quotaStatus(prisma, caller), keyUsage(prisma, caller.id)]);
      return {
        key: { id: caller.id, prefix: caller.prefix, name: caller.name, owner: caller.owner },
        plan: caller.plan,
        quota: { period: quota.period, limit: quota.limit, used: quota.used, remaining: quota.remaining, pages: quota.pages, resetsAt: iso(quota.resetsAt) },
        days,
      };
    },
  );
};
