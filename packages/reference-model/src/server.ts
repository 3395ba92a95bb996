import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { Logger } from "pino";
import { z } from "zod";
import { ImageDecodeError, type InkOptions } from "./ink.js";
import { createMeasurer } from "./measure.js";

/** How the server misbehaves on purpose, so tests can prove the client copes. */
export interface Faults {
  /** Added to every request before it is answered (also to faulted ones). @defaultValue 0 */
  delayMs: number;
  /** Share (0..1) of requests answered 429 with Retry-After. @defaultValue 0 */
  throttleRate: number;
  /** Share (0..1) of requests answered 500. @defaultValue 0 */
  errorRate: number;
  /** Every request is answered 503 at once, as an endpoint that is down. @defaultValue false */
  down: boolean;
  /** Retry-After (seconds) sent with a 429. @defaultValue 1 */
  retryAfterSeconds: number;
}

export const defaultFaults: Faults = { delayMs: 0, throttleRate: 0, errorRate: 0, down: false, retryAfterSeconds: 1 };

const FaultsPatch = z.strictObject({
  delayMs: z.number().int().nonnegative().optional(),
  throttleRate: z.number().min(0).max(1).optional(),
  errorRate: z.number().min(0).max(1).optional(),
  down: z.boolean().optional(),
  retryAfterSeconds: z.number().nonnegative().optional(),
});

const InvocationRequest = z.object({ bucket: z.string().min(1), key: z.string().min(1) });

export interface ModelStats {
  /** Invocations being handled now. */
  inFlight: number;
  /** The most invocations ever handled at once since the last reset. */
  maxInFlight: number;
  /** Invocations received since the last reset. */
  requests: number;
  /** Invocations answered, by HTTP status ("200", "429", ...). */
  byStatus: Record<string, number>;
}

export interface ReferenceModelOptions extends InkOptions {
  /** Reads the PNGs. */
  s3: S3Client;
  /** 0 picks a free port. @defaultValue 0 */
  port?: number;
  /** @defaultValue "127.0.0.1" */
  host?: string;
  /** @defaultValue "docpipe-ink" */
  modelName?: string;
  /** @defaultValue "1.0.0" */
  modelVersion?: string;
  /** Initial fault settings. */
  faults?: Partial<Faults>;
  /** Source of randomness for the fault shares; injectable for deterministic tests. @defaultValue Math.random */
  random?: () => number;
  /**
   * Worker threads that decode and measure the images, so that the measure (synchronous CPU
   * work, a few ms a page) holds up neither the server nor what else shares its event loop (in
   * `docpipe run`, every service). 0 measures on the server's own thread, as each process of the
   * standalone image does (it runs one process per core). @defaultValue os.availableParallelism()
   */
  measureThreads?: number;
  logger?: Logger;
}

export interface ReferenceModel {
  /** Base URL, e.g. http://127.0.0.1:41234; the invocation URL is `${url}/invocations`. */
  url: string;
  stats(): ModelStats;
  /** Zeroes the counters (not the faults). */
  resetStats(): void;
  /** Changes some fault settings; returns the resulting ones. */
  setFaults(patch: Partial<Faults>): Faults;
  readonly faults: Faults;
  stop(): Promise<void>;
}

/** The model's answer: the same shape the inference client expects from the real endpoint. */
export interface InvocationResponse {
  model: { name: string; version: string };
  output: { width: number; height: number; inkCoverage: number; inkPixels: number; meanGray: number; blank: boolean };
  features: string[];
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * Starts the reference model: `POST /invocations {bucket, key}` reads the PNG from S3 and
 * returns its ink coverage and whether it is blank. `POST /admin/faults` changes the fault
 * knobs, `GET /admin/stats` returns the counters, `POST /admin/reset` zeroes them, `GET /ping`
 * is the health check (as on SageMaker).
 */
export async function startReferenceModel(opts: ReferenceModelOptions): Promise<ReferenceModel> {
  const random = opts.random ?? Math.random;
  const name = opts.modelName ?? "docpipe-ink";
  const version = opts.modelVersion ?? "1.0.0";
  let faults: Faults = { ...defaultFaults, ...opts.faults };
  const stats: ModelStats = { inFlight: 0, maxInFlight: 0, requests: 0, byStatus: {} };
  const log = opts.logger?.child({ component: "reference-model" });
  const ink = { inkThreshold: opts.inkThreshold, blankThreshold: opts.blankThreshold, maxPixels: opts.maxPixels };
  const measurer = createMeasurer(ink, opts.measureThreads);

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
    res.end(text);
  };

  async function invoke(req: IncomingMessage): Promise<InvocationResponse> {
    const body = await readJson(req);
    if (faults.down) throw new HttpError(503, "model endpoint is down");
    if (faults.delayMs > 0) await new Promise((r) => setTimeout(r, faults.delayMs));
    if (faults.throttleRate > 0 && random() < faults.throttleRate) {
      throw new HttpError(429, "too many requests", { "retry-after": String(faults.retryAfterSeconds) });
    }
    if (faults.errorRate > 0 && random() < faults.errorRate) throw new HttpError(500, "injected model error");
    const parsed = InvocationRequest.safeParse(body);
    if (!parsed.success) throw new HttpError(400, "body must be {bucket, key}");
    const bytes = await getObject(opts.s3, parsed.data.bucket, parsed.data.key);
    try {
      const output = await measurer.measure(bytes);
      return { model: { name, version }, output, features: [output.blank ? "blank" : "ink"] };
    } catch (e) {
      if (e instanceof ImageDecodeError) throw new HttpError(422, e.message);
      throw e;
    }
  }

  const server = createServer((req, res) => {
    const url = req.url ?? "/";
    void (async () => {
      if (req.method === "POST" && url === "/invocations") {
        stats.requests += 1;
        stats.inFlight += 1;
        stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
        let status = 200;
        try {
          send(res, 200, await invoke(req));
        } catch (e) {
          status = e instanceof HttpError ? e.status : 500;
          if (!(e instanceof HttpError)) log?.error({ err: e }, "invocation failed");
          send(res, status, { error: e instanceof Error ? e.message : String(e) }, e instanceof HttpError ? e.headers : {});
        } finally {
          stats.inFlight -= 1;
          stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
        }
        return;
      }
      if (req.method === "GET" && url === "/ping") return send(res, faults.down ? 503 : 200, { ok: !faults.down });
      if (req.method === "GET" && url === "/admin/stats") return send(res, 200, stats);
      if (req.method === "GET" && url === "/admin/faults") return send(res, 200, faults);
      if (req.method === "POST" && url === "/admin/faults") {
        const patch = FaultsPatch.safeParse(await readJson(req).catch(() => undefined));
        if (!patch.success) return send(res, 400, { error: patch.error.message });
        return send(res, 200, setFaults(patch.data));
      }
      if (req.method === "POST" && url === "/admin/reset") {
        resetStats();
        return send(res, 200, stats);
      }
      send(res, 404, { error: "not found" });
    })().catch((e: unknown) => {
      log?.error({ err: e }, "request failed");
      if (!res.headersSent) send(res, 500, { error: "internal error" });
    });
  });

  function setFaults(patch: Partial<Faults>): Faults {
    faults = { ...faults, ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) };
    log?.info({ faults }, "faults changed");
    return faults;
  }
  function resetStats(): void {
    stats.maxInFlight = stats.inFlight;
    stats.requests = 0;
    stats.byStatus = {};
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const url = `http://${opts.host ?? "127.0.0.1"}:${address.port}`;
  log?.info({ url }, "reference model listening");

  return {
    url,
    stats: () => ({ ...stats, byStatus: { ...stats.byStatus } }),
    resetStats,
    setFaults,
    get faults() {
      return faults;
    },
    stop: async () => {
      await new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeAllConnections();
      });
      await measurer.close();
    },
  };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 64 * 1024) throw new HttpError(413, "body too large");
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "body is not JSON");
  }
}

async function getObject(s3: S3Client, bucket: string, key: string): Promise<Uint8Array> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    if (!out.Body) throw new HttpError(502, "empty object body");
    return await out.Body.transformToByteArray();
  } catch (e) {
    if (e instanceof HttpError) throw e;
    const name = (e as { name?: string }).name;
    if (name === "NoSuchKey" || name === "NotFound" || name === "NoSuchBucket") {
      throw new HttpError(404, `no object s3://${bucket}/${key}`);
    }
    throw new HttpError(502, "cannot read the object from S3");
  }
}
