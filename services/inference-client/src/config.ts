import { SageMakerRuntimeClient } from "@aws-sdk/client-sagemaker-runtime";
import { commonEnv, intEnv, loadEnv } from "@docpipe/queue";
import { z } from "zod";
import { defaults } from "./defaults.js";
import { HttpModelInvoker, SageMakerModelInvoker, type ModelInvoker } from "./model/invoker.js";

const configSchema = commonEnv
  .extend({
    MODEL_URL: z.url({ error: "MODEL_URL must be the model's invocation URL, e.g. http://127.0.0.1:8080/invocations" }).optional(),
    MODEL_AUTH_HEADER_NAME: z.string().min(1).default("x-api-key"),
    MODEL_AUTH_HEADER_VALUE: z.string().min(1).optional(),
    SAGEMAKER_ENDPOINT_NAME: z.string().min(1).optional(),
    MODEL_TIMEOUT_MS: intEnv("MODEL_TIMEOUT_MS", { min: 1, default: defaults.modelTimeoutMs }),
    MODEL_MAX_CONCURRENCY: intEnv("MODEL_MAX_CONCURRENCY", { min: 1, default: defaults.maxConcurrency }),
    MODEL_RATE_PER_SECOND: z.coerce.number({ error: "MODEL_RATE_PER_SECOND must be a number (0 = no limit)" }).min(0).default(defaults.ratePerSecond),
    MODEL_BURST: intEnv("MODEL_BURST", { min: 1, default: defaults.burst }),
    MODEL_MAX_ATTEMPTS: intEnv("MODEL_MAX_ATTEMPTS", { min: 1, default: defaults.maxAttempts }),
    MODEL_RETRY_BASE_MS: intEnv("MODEL_RETRY_BASE_MS", { min: 1, default: defaults.backoff.baseMs }),
    MODEL_RETRY_CAP_MS: intEnv("MODEL_RETRY_CAP_MS", { min: 1, default: defaults.backoff.capMs }),
    BREAKER_FAILURE_THRESHOLD: intEnv("BREAKER_FAILURE_THRESHOLD", { min: 1, default: defaults.breakerFailureThreshold }),
    BREAKER_COOLDOWN_MS: intEnv("BREAKER_COOLDOWN_MS", { min: 0, default: defaults.breakerCooldownMs }),
    WORKER_CONCURRENCY: intEnv("WORKER_CONCURRENCY", { min: 0, default: 0 }),
  })
  .refine((c) => c.MODEL_URL !== undefined || c.SAGEMAKER_ENDPOINT_NAME !== undefined, {
    message: "set MODEL_URL (HTTP endpoint) or SAGEMAKER_ENDPOINT_NAME (InvokeEndpoint)",
    path: ["MODEL_URL"],
  });

export type InferenceClientConfig = z.infer<typeof configSchema>;

/** Reads the inference client's configuration; throws ConfigError naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): InferenceClientConfig {
  return loadEnv(configSchema, env);
}

/** The invoker the configuration asks for: SageMaker InvokeEndpoint when an endpoint name is set, HTTP otherwise. */
export function buildModelInvoker(config: InferenceClientConfig): ModelInvoker {
  if (config.SAGEMAKER_ENDPOINT_NAME) {
    return new SageMakerModelInvoker({
      // One attempt per send: our own retry loop (with breaker and rate limit) does the retrying.
      client: new SageMakerRuntimeClient({ region: config.AWS_REGION, maxAttempts: 1 }),
      endpointName: config.SAGEMAKER_ENDPOINT_NAME,
      timeoutMs: config.MODEL_TIMEOUT_MS,
    });
  }
  return new HttpModelInvoker({
    url: config.MODEL_URL!,
    timeoutMs: config.MODEL_TIMEOUT_MS,
    ...(config.MODEL_AUTH_HEADER_VALUE && {
      authHeader: { name: config.MODEL_AUTH_HEADER_NAME, value: config.MODEL_AUTH_HEADER_VALUE },
    }),
  });
}
