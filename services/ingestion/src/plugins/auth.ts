import { KeyGate, type CallerKey, type KeyGateOptions } from "@docpipe/api-keys";
import type { PrismaClient } from "@docpipe/db";
import fp from "fastify-plugin";
import { AccessError, ThrottledError } from "../errors.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The authenticated key; set for every route but the public ones. */
    caller: CallerKey | null;
  }
  interface FastifyContextConfig {
    /** No API key needed (health checks, docs). */
    public?: boolean;
  }
}

/** The key from `x-api-key`, or from `Authorization: Bearer <key>`. */
function presentedKey(headers: Record<string, string | string[] | undefined>): string | undefined {
  const x = headers["x-api-key"];
  if (typeof x === "string" && x.trim()) return x.trim();
  const auth = headers.authorization;
  if (typeof auth === "string") {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  return undefined;
}

/** The caller of a secured route (the auth plugin has set it). */
export function callerOf(request: { caller: CallerKey | null }): CallerKey {
  if (!request.caller) throw new AccessError(401, "api_key_missing", "this route needs an API key");
  return request.caller;
}

/** How this process authenticates: see KeyGate (known keys cached briefly, failures limited per address). */
export type AuthOptions = Omit<KeyGateOptions, "prisma" | "now">;

/**
 * Every request but the public routes: who is calling (401/403), and within their rate (429).
 * Runs before the body is parsed, so an anonymous or throttled caller costs one query at most,
 * and an address past its failed authentications none (429 `auth_failures_limited`).
 */
export const authPlugin = fp<{ prisma: PrismaClient; auth?: AuthOptions }>(
  async (app, { prisma, auth }) => {
    const gate = new KeyGate({ prisma, ...auth });
    app.decorateRequest("caller", null);
    app.addHook("onRequest", async (request, reply) => {
      if (request.routeOptions.config.public || request.url === "/docs" || request.url.startsWith("/docs/")) return;
      const presented = presentedKey(request.headers);
      if (!presented) {
        throw new AccessError(401, "api_key_missing", "send your API key in the x-api-key header (or Authorization: Bearer <key>)");
      }
      const admitted = await gate.admit(presented, request.ip);
      if (!admitted.auth.ok) {
        const a = admitted.auth;
        if (a.status === 429) {
          request.log.warn({ ip: request.ip }, "authentication failures limited");
          throw new ThrottledError(a.code, a.message, Math.max(1, Math.ceil(a.retryAfterMs / 1000)), { retryAfterMs: a.retryAfterMs });
        }
        throw new AccessError(a.status, a.code, a.message);
      }
      const key = admitted.auth.key;
      const rate = admitted.rate!; // always there for a usable key
      request.caller = key;
      reply.header("x-ratelimit-limit", String(key.plan.ratePerSecond));
      reply.header("x-ratelimit-burst", String(key.plan.burst));
      reply.header("x-ratelimit-remaining", String(Math.floor(rate.tokens)));
      if (!rate.allowed) {
        throw new ThrottledError(
          "rate_limited",
          `API key ${key.prefix} is over its rate of ${key.plan.ratePerSecond} requests per second (burst ${key.plan.burst}); retry after ${rate.retryAfterMs} ms`,
          Math.max(1, Math.ceil(rate.retryAfterMs / 1000)),
          { retryAfterMs: rate.retryAfterMs, ratePerSecond: key.plan.ratePerSecond, burst: key.plan.burst },
        );
      }
      request.log = request.log.child({ apiKey: key.prefix });
    });
  },
  { name: "auth" },
);
