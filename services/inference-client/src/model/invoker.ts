import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { InvokeEndpointCommand, type SageMakerRuntimeClient } from "@aws-sdk/client-sagemaker-runtime";
import { coerceError } from "@docpipe/queue";
import { z } from "zod";
import { parseRetryAfterMs } from "../limits/backoff.js";
import { fixedApiKey, type ApiKeySource } from "./api-key.js";
import { isRetryableStatus, ModelRejectedError, ModelThrottledError, ModelUnavailableError } from "./errors.js";
import { defaults } from "../defaults.js";

/** What the model is asked: score the PNG at this S3 location. */
export interface ModelRequest {
  bucket: string;
  key: string;
}

/** The contract every model endpoint answers with. */
export const ModelResponse = z.object({
  model: z.object({ name: z.string().min(1), version: z.string().min(1) }),
  output: z.record(z.string(), z.unknown()),
  features: z.array(z.string()),
});
export type ModelResponse = z.infer<typeof ModelResponse>;

/** One call to the endpoint, no retries: {@link ModelUnavailableError} (retry) or {@link ModelRejectedError} (don't). */
export interface ModelInvoker {
  readonly description: string;
  invoke(request: ModelRequest, signal: AbortSignal): Promise<ModelResponse>;
}

function parseResponse(text: string, where: string): ModelResponse {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ModelUnavailableError("model_bad_response", `${where} answered with something that is not JSON`, { cause });
  }
  const parsed = ModelResponse.safeParse(json);
  if (!parsed.success) {
    // A broken model deployment, not a bad page: retry (and let the breaker stop the flood).
    throw new ModelUnavailableError("model_bad_response", `${where} answered outside the contract: ${parsed.error.message}`);
  }
  return parsed.data;
}

export interface HttpInvokerOptions {
  /** The invocation URL (API Gateway in front of SageMaker, or the reference model's `/invocations`). */
  url: string;
  /**
   * The API key, sent with every call in the header `name`: a fixed value, or a source
   * ({@link SecretApiKey}) that is read again when the endpoint answers 403 (a rotated key).
   */
  authHeader?: { name: string; key: string | ApiKeySource };
  /** Per-call timeout. @defaultValue 30000 */
  timeoutMs?: number;
}

/**
 * Calls the endpoint with node:http(s) and its global agents (keep-alive). Not fetch: for a
 * small JSON answer, undici's web streams and headers cost ~0.28 CPU-ms a call against ~0.12.
 */
export class HttpModelInvoker implements ModelInvoker {
  readonly description: string;
  private readonly timeoutMs: number;
  private readonly key: ApiKeySource | undefined;
  private readonly url: URL;

  constructor(private readonly opts: HttpInvokerOptions) {
    this.timeoutMs = opts.timeoutMs ?? defaults.modelTimeoutMs;
    this.url = new URL(opts.url);
    this.description = `POST ${this.url.origin}${this.url.pathname}`;
    const key = opts.authHeader?.key;
    this.key = typeof key === "string" ? fixedApiKey(key) : key;
  }

  async invoke(request: ModelRequest, signal: AbortSignal): Promise<ModelResponse> {
    const key = await this.key?.current();
    let answer = await this.post(request, key, signal);
    // A key rotated since we read it: read it again, and call once more with the new one.
    if (answer.status === 403 && key !== undefined && (await this.key!.renew(key))) {
      answer = await this.post(request, await this.key!.current(), signal);
    }
    const { status, text, retryAfter } = answer;
    if (status >= 200 && status < 300) return parseResponse(text, "model endpoint");
    const detail = text.slice(0, 200);
    if (isRetryableStatus(status)) {
      const retryAfterMs = parseRetryAfterMs(retryAfter);
      const ids = { status, key: request.key, ...(retryAfterMs !== undefined && { retryAfterMs }) };
      if (status === 429) throw new ModelThrottledError("model_throttled", `model endpoint answered 429: ${detail}`, ids);
      throw new ModelUnavailableError(`model_http_${status}`, `model endpoint answered ${status}: ${detail}`, ids);
    }
    throw new ModelRejectedError(`model_http_${status}`, `model endpoint refused the page with ${status}: ${detail}`, { status, key: request.key });
  }

  /** One POST; the answer whatever its status, or ModelUnavailableError when there is none. */
  private post(request: ModelRequest, apiKey: string | undefined, signal: AbortSignal): Promise<{ status: number; text: string; retryAfter: string | undefined }> {
    const body = JSON.stringify({ bucket: request.bucket, key: request.key });
    const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json", "content-length": String(Buffer.byteLength(body)) };
    if (this.opts.authHeader && apiKey !== undefined) headers[this.opts.authHeader.name] = apiKey;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    return new Promise((resolve, reject) => {
      const fail = (e: unknown) => {
        if (signal.aborted) return reject(e);
        const err = coerceError(e);
        const timedOut = timeout.aborted;
        reject(
          new ModelUnavailableError(
            timedOut ? "model_timeout" : "model_unreachable",
            timedOut ? `model endpoint did not answer within ${this.timeoutMs} ms` : `model endpoint unreachable: ${err.message}`,
            { cause: err, key: request.key },
          ),
        );
      };
      const answered = (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", fail);
        res.on("end", () => {
          const retryAfter = res.headers["retry-after"];
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8"), retryAfter });
        });
      };
      const send = this.url.protocol === "https:" ? httpsRequest : httpRequest;
      send(this.url, { method: "POST", headers, signal: AbortSignal.any([signal, timeout]) }, answered)
        .on("error", fail)
        .end(body);
    });
  }
}

export interface SageMakerInvokerOptions {
  client: SageMakerRuntimeClient;
  endpointName: string;
  /** Per-call timeout. @defaultValue 30000 */
  timeoutMs?: number;
}

/** Errors SageMaker Runtime names when the endpoint is busy or broken rather than the request wrong. */
const SAGEMAKER_RETRYABLE = new Set([
  "ServiceUnavailable",
  "InternalFailure",
  "InternalDependencyException",
  "ModelNotReadyException",
]);

/**
 * Calls SageMaker InvokeEndpoint directly. Give it a client built with `maxAttempts: 1`: the
 * protected client does the retrying, with the breaker and rate limit in the loop.
 */
export class SageMakerModelInvoker implements ModelInvoker {
  readonly description: string;
  private readonly timeoutMs: number;

  constructor(private readonly opts: SageMakerInvokerOptions) {
    this.timeoutMs = opts.timeoutMs ?? defaults.modelTimeoutMs;
    this.description = `SageMaker endpoint ${opts.endpointName}`;
  }

  async invoke(request: ModelRequest, signal: AbortSignal): Promise<ModelResponse> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    try {
      const out = await this.opts.client.send(
        new InvokeEndpointCommand({
          EndpointName: this.opts.endpointName,
          ContentType: "application/json",
          Accept: "application/json",
          Body: new TextEncoder().encode(JSON.stringify({ bucket: request.bucket, key: request.key })),
        }),
        { abortSignal: AbortSignal.any([signal, timeout]) },
      );
      return parseResponse(new TextDecoder().decode(out.Body ?? new Uint8Array()), this.description);
    } catch (e) {
      if (signal.aborted) throw e;
      if (e instanceof ModelUnavailableError) throw e;
      const err = coerceError(e);
      const meta = (e as { $metadata?: { httpStatusCode?: number } }).$metadata;
      // ModelError carries the container's own status; judge by it when present.
      const original = (e as { OriginalStatusCode?: number }).OriginalStatusCode;
      const status = original ?? meta?.httpStatusCode;
      if (timeout.aborted) {
        throw new ModelUnavailableError("model_timeout", `${this.description} did not answer within ${this.timeoutMs} ms`, { cause: err });
      }
      const ids = { cause: err, key: request.key, ...(status !== undefined && { status }) };
      if (err.name === "ThrottlingException" || status === 429) throw new ModelThrottledError("model_throttled", `${this.description} throttled the call: ${err.message}`, ids);
      if (SAGEMAKER_RETRYABLE.has(err.name) || status === undefined || isRetryableStatus(status)) {
        throw new ModelUnavailableError(`sagemaker_${err.name}`, `${this.description} failed: ${err.message}`, ids);
      }
      throw new ModelRejectedError(`sagemaker_${err.name}`, `${this.description} refused the page: ${err.message}`, {
        cause: err,
        key: request.key,
        status,
      });
    }
  }
}
