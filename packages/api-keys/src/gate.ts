import type { PrismaClient } from "@docpipe/db";
import { admitRequest, takeToken, type AuthResult, type RateDecision } from "./admit.js";
import { hashKey, type CallerKey } from "./keys.js";

export interface KeyGateOptions {
  prisma: PrismaClient;
  /**
   * How long a known key's lookup is reused, in seconds: a request of a cached key is one
   * statement on its token bucket, not a lookup by hash. Disabling or rotating a key (grace 0)
   * reaches a process that has it cached within this bound; a plan change too. 0 turns the
   * cache off. @defaultValue 5
   */
  keyCacheSeconds?: number;
  /** Failed authentications (unknown, disabled or expired keys) one client address may make at once. @defaultValue 20 */
  failureBurst?: number;
  /** How fast an address earns those back, per second. @defaultValue 1 */
  failuresPerSecond?: number;
  /** Addresses remembered at once; the oldest are forgotten first. @defaultValue 10000 */
  maxAddresses?: number;
  /** @defaultValue Date.now */
  now?: () => number;
}

/** What the gate decided: the key's authentication and, for a usable key, its rate decision. */
export interface GateDecision {
  auth: AuthResult | { ok: false; status: 429; code: "auth_failures_limited"; message: string; retryAfterMs: number };
  rate?: RateDecision;
}

interface Cached {
  key: CallerKey;
  /** Epoch ms after which the lookup is made again. */
  until: number;
}

interface Failures {
  tokens: number;
  at: number;
}

/**
 * Authentication for one process (an ingestion task), in front of {@link admitRequest}:
 *
 * - **Known keys are cached briefly** by the SHA-256 of the secret: within `keyCacheSeconds` a
 *   known key's request only takes a token from its (shared, Postgres) bucket. A disabled key, a
 *   secret rotated without grace and a changed plan therefore reach this process within that
 *   bound; a rotated secret's grace period ends exactly (its entry expires with it).
 * - **Failed authentications are limited per client address**, in memory: a token bucket of
 *   `failureBurst` refilled at `failuresPerSecond`. Past it an address gets 429
 *   `auth_failures_limited` without any query; a key this process has cached (or had cached
 *   until its entry expired) still passes, so a guesser behind the same address (a NAT) does not
 *   lock out the keys in use. Each task counts on its own: N tasks allow N times the rate.
 */
export class KeyGate {
  private readonly prisma: PrismaClient;
  private readonly ttlMs: number;
  private readonly burst: number;
  private readonly perMs: number;
  private readonly maxAddresses: number;
  private readonly now: () => number;
  private readonly cache = new Map<string, Cached>();
  private readonly failures = new Map<string, Failures>();

  constructor(opts: KeyGateOptions) {
    this.prisma = opts.prisma;
    this.ttlMs = Math.max(0, (opts.keyCacheSeconds ?? 5) * 1000);
    this.burst = Math.max(1, opts.failureBurst ?? 20);
    this.perMs = Math.max(1e-6, opts.failuresPerSecond ?? 1) / 1000;
    this.maxAddresses = Math.max(1, opts.maxAddresses ?? 10_000);
    this.now = opts.now ?? Date.now;
  }

  async admit(presented: string, address: string): Promise<GateDecision> {
    const hash = hashKey(presented);
    const now = this.now();
    const cached = this.cache.get(hash);
    if (cached && cached.until > now) {
      const rate = await takeToken(this.prisma, cached.key);
      if (rate) return { auth: { ok: true, key: cached.key }, rate };
    }
    // An expired entry is a key known a moment ago: looked up again even from a limited address.
    const known = cached !== undefined;
    this.cache.delete(hash);
    const left = this.failuresLeft(address, now);
    if (left < 1 && !known) {
      const retryAfterMs = Math.ceil((1 - left) / this.perMs);
      return {
        auth: {
          ok: false,
          status: 429,
          code: "auth_failures_limited",
          message: `too many requests with unknown, disabled or expired API keys from this address; retry after ${retryAfterMs} ms`,
          retryAfterMs,
        },
      };
    }
    // Taken before the lookup, so concurrent guesses cannot all pass the check; a known key gives it back.
    this.take(address, now);
    const admitted = await admitRequest(this.prisma, presented);
    if (!admitted.auth.ok) return admitted;
    this.giveBack(address);
    if (this.ttlMs > 0) {
      const graceEnds = admitted.usableUntil?.getTime() ?? Infinity;
      this.remember(hash, { key: admitted.auth.key, until: Math.min(now + this.ttlMs, graceEnds) });
    }
    return admitted;
  }

  private failuresLeft(address: string, now: number): number {
    const f = this.failures.get(address);
    return f ? Math.min(this.burst, f.tokens + (now - f.at) * this.perMs) : this.burst;
  }

  private take(address: string, now: number): void {
    const tokens = this.failuresLeft(address, now) - 1;
    this.failures.delete(address); // re-inserted last: the map's order is the order of last failure
    this.failures.set(address, { tokens, at: now });
    if (this.failures.size > this.maxAddresses) this.failures.delete(this.failures.keys().next().value!);
  }

  private giveBack(address: string): void {
    const f = this.failures.get(address);
    if (f) f.tokens = Math.min(this.burst, f.tokens + 1);
  }

  /** Entries stay after they expire (bounded, oldest forgotten first): an expired one still marks a known key. */
  private remember(hash: string, entry: Cached): void {
    this.cache.set(hash, entry);
    if (this.cache.size > this.maxAddresses) this.cache.delete(this.cache.keys().next().value!);
  }
}
