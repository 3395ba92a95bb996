import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * What API Gateway's usage plan does in front of the model endpoint on AWS (infra/lib/model-api.ts),
 * for local runs and tests: an API key, a token bucket (rate and burst), a quota per period,
 * and a 429 with Retry-After when a call is over either. Accepted calls are forwarded to the
 * model unchanged, and its answer comes back unchanged, as the SageMaker integration passes
 * on the container's status and body.
 */
export interface UsagePlanGatewayOptions {
  /** Base URL of the model (the reference model's `url`); the request path is kept. */
  target: string;
  /** The key every call must carry in `x-api-key`; without it, or with another: 403, as API Gateway answers. */
  apiKey: string;
  /** Steady calls per second: the token bucket's refill rate. */
  rateLimit: number;
  /** Calls that may go at once after a quiet spell: the token bucket's size. */
  burstLimit: number;
  /** At most `limit` accepted calls per period (a day on AWS; shorter in tests). Unset: no quota. */
  quota?: { limit: number; periodMs: number };
  /** Retry-After sent when over the rate. @defaultValue 1 (the deployed API's THROTTLED response) */
  throttledRetryAfterSeconds?: number;
  /** 0 picks a free port. @defaultValue 0 */
  port?: number;
  /** @defaultValue "127.0.0.1" */
  host?: string;
}

/** One call as the gateway saw it. */
export interface GatewayCall {
  /** Milliseconds since the gateway started, when the call arrived. */
  at: number;
  /** The `key` of the request body: the page the call is about. */
  pageKey: string | undefined;
  status: number;
  /** Retry-After the gateway sent with a 429 of its own, in seconds. */
  retryAfterSeconds?: number;
  /** Which limit refused the call, when the gateway did. */
  refusedBy?: "key" | "body" | "rate" | "quota";
}

export interface UsagePlanGateway {
  /** Base URL; the inference client's MODEL_URL is `${url}/invocations`. */
  url: string;
  /** Every call so far, in arrival order. */
  calls(): GatewayCall[];
  /** Admits another key from now on (the old one gets 403), as a deploy with a rotated key secret does. */
  setApiKey(apiKey: string): void;
  stop(): Promise<void>;
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
};

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    // API Gateway's payload limit is 10 MB; the contract's body is a few hundred bytes.
    if (size > 64 * 1024) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The page key of a contract request `{bucket, key}`, or undefined when the body is not one (the API's request validator). */
function pageKeyOf(body: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(body.toString("utf8")) as { bucket?: unknown; key?: unknown };
    const ok = typeof parsed.bucket === "string" && parsed.bucket !== "" && typeof parsed.key === "string" && parsed.key !== "";
    return ok ? (parsed.key as string) : undefined;
  } catch {
    return undefined;
  }
}

/** Starts a usage-plan gateway in front of `target`. */
export async function startUsagePlanGateway(opts: UsagePlanGatewayOptions): Promise<UsagePlanGateway> {
  if (!(opts.rateLimit > 0) || !(opts.burstLimit >= 1)) throw new RangeError("rateLimit must be above 0 and burstLimit at least 1");
  const started = performance.now();
  const now = () => performance.now() - started;
  const throttledRetryAfter = opts.throttledRetryAfterSeconds ?? 1;
  const log: GatewayCall[] = [];
  let apiKey = opts.apiKey;
  let tokens = opts.burstLimit;
  let refilledAt = 0;
  let quotaPeriod = 0;
  let quotaUsed = 0;

  function takeToken(at: number): boolean {
    tokens = Math.min(opts.burstLimit, tokens + ((at - refilledAt) / 1000) * opts.rateLimit);
    refilledAt = at;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = now();
    const body = await readBody(req);
    const pageKey = body && pageKeyOf(body);
    const call: GatewayCall = { at, pageKey, status: 0 };
    log.push(call);
    const refuse = (status: number, by: GatewayCall["refusedBy"], message: unknown, retryAfterSeconds?: number) => {
      Object.assign(call, { status, refusedBy: by, ...(retryAfterSeconds !== undefined && { retryAfterSeconds }) });
      json(res, status, message, retryAfterSeconds !== undefined ? { "retry-after": String(retryAfterSeconds) } : {});
    };
    if (req.headers["x-api-key"] !== apiKey) return refuse(403, "key", { message: "Forbidden" });
    if (req.method === "POST" && pageKey === undefined) return refuse(400, "body", { message: "Invalid request body" });
    if (opts.quota) {
      const period = Math.floor(at / opts.quota.periodMs);
      if (period !== quotaPeriod) [quotaPeriod, quotaUsed] = [period, 0];
      if (quotaUsed >= opts.quota.limit) {
        // Here the reset time is known, so say it (API Gateway can only send a fixed value).
        const untilReset = Math.max(1, Math.ceil(((period + 1) * opts.quota.periodMs - at) / 1000));
        return refuse(429, "quota", { error: "the usage plan's quota is spent", retryAfterSeconds: untilReset }, untilReset);
      }
    }
    if (!takeToken(at)) {
      return refuse(429, "rate", { error: "over the usage plan's rate", retryAfterSeconds: throttledRetryAfter }, throttledRetryAfter);
    }
    if (opts.quota) quotaUsed += 1;
    let upstream: Response;
    try {
      upstream = await fetch(new URL(req.url ?? "/", opts.target), {
        method: req.method ?? "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        ...(req.method !== "GET" && req.method !== "HEAD" && { body }),
      });
    } catch {
      call.status = 503;
      return json(res, 503, { error: "the model endpoint did not answer" });
    }
    const text = await upstream.text();
    call.status = upstream.status;
    const retryAfter = upstream.headers.get("retry-after");
    res.writeHead(upstream.status, {
      "content-type": upstream.headers.get("content-type") ?? "application/json",
      ...(retryAfter !== null && { "retry-after": retryAfter }),
    });
    res.end(text);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) json(res, 500, { message: "Internal server error" });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${opts.host ?? "127.0.0.1"}:${port}`,
    calls: () => log.map((c) => ({ ...c })),
    setApiKey: (key) => {
      apiKey = key;
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeAllConnections();
      }),
  };
}
