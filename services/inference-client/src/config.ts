import { SageMakerRuntimeClient } from "@aws-sdk/client-sagemaker-runtime";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { awsCredentials, commonEnv, intEnv, loadEnv, type Logger } from "@docpipe/queue";
import { z } from "zod";
import { defaults } from "./defaults.js";
import { SecretApiKey } from "./model/api-key.js";
import { HttpModelInvoker, SageMakerModelInvoker, type ModelInvoker } from "./model/invoker.js";

const configSchema = commonEnv
  .extend({
    MODEL_URL: z.url({ error: "MODEL_URL must be the model's invocation URL, e.g. http://127.0.0.1:8080/invocations" }).optional(),
    MODEL_AUTH_HEADER_NAME: z.string().min(1).default("x-api-key"),
    /** ARN or name of the Secrets Manager secret whose string is the API key sent in MODEL_AUTH_HEADER_NAME. */
    MODEL_API_KEY_SECRET: z.string().min(1).optional(),
    AWS_ENDPOINT_URL_SECRETS_MANAGER: z.url({ error: "AWS_ENDPOINT_URL_SECRETS_MANAGER must be a URL such as http://127.0.0.1:4584" }).optional(),
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
  })
  .refine((c) => c.MODEL_API_KEY_SECRET === undefined || c.SAGEMAKER_ENDPOINT_NAME === undefined, {
    message: "MODEL_API_KEY_SECRET goes with MODEL_URL: InvokeEndpoint is signed with the task's credentials and takes no key",
    path: ["MODEL_API_KEY_SECRET"],
  });

export type InferenceClientConfig = z.infer<typeof configSchema>;

/** Reads the inference client's configuration; throws ConfigError naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): InferenceClientConfig {
  return loadEnv(configSchema, env);
}

/**
 * The invoker the configuration asks for: SageMaker InvokeEndpoint when an endpoint name is set,
 * HTTP otherwise. With MODEL_API_KEY_SECRET the key is read here, with the task's own
 * credentials, so a secret the task may not read stops the start with the reason.
 */
export async function buildModelInvoker(config: InferenceClientConfig, logger?: Logger): Promise<ModelInvoker> {
  if (config.SAGEMAKER_ENDPOINT_NAME) {
    return new SageMakerModelInvoker({
      // One attempt per send: our own retry loop (with breaker and rate limit) does the retrying.
      client: new SageMakerRuntimeClient({ region: config.AWS_REGION, maxAttempts: 1 }),
      endpointName: config.SAGEMAKER_ENDPOINT_NAME,
      timeoutMs: config.MODEL_TIMEOUT_MS,
    });
  }
  let key: SecretApiKey | undefined;
  if (config.MODEL_API_KEY_SECRET) {
    const client = new SecretsManagerClient({
      region: config.AWS_REGION,
      ...awsCredentials(config),
      ...(config.AWS_ENDPOINT_URL_SECRETS_MANAGER && { endpoint: config.AWS_ENDPOINT_URL_SECRETS_MANAGER }),
    });
    key = new SecretApiKey({ client, secretId: config.MODEL_API_KEY_SECRET, ...(logger && { logger }) });
    await key.current();
  }
  return new HttpModelInvoker({
    url: config.MODEL_URL!,
    timeoutMs: config.MODEL_TIMEOUT_MS,
    ...(key && { authHeader: { name: config.MODEL_AUTH_HEADER_NAME, key } }),
  });
}
