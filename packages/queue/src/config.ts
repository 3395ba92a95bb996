import type { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import { z } from "zod";
import { createS3Client } from "./aws-clients.js";

/**
 * The environment every service shares: how to reach the database, S3 and SQS. On AWS the
 * endpoints are unset and the SDK's defaults apply; locally they point at the stand-ins.
 * Each service extends this schema with its own variables.
 */
export const commonEnv = z.object({
  DATABASE_URL: z
    .string({ error: "DATABASE_URL is required: a postgres:// URL of the docpipe database" })
    .regex(/^postgres(ql)?:\/\//, "DATABASE_URL must start with postgres:// or postgresql://"),
  AWS_REGION: z.string().default("us-east-1"),
  AWS_ENDPOINT_URL_S3: z.url({ error: "AWS_ENDPOINT_URL_S3 must be a URL such as http://127.0.0.1:4569" }).optional(),
  AWS_ENDPOINT_URL_SQS: z.url({ error: "AWS_ENDPOINT_URL_SQS must be a URL such as http://127.0.0.1:9324" }).optional(),
  S3_FORCE_PATH_STYLE: z
    .enum(["true", "false"], { error: "S3_FORCE_PATH_STYLE must be true or false" })
    .default("false")
    .transform((v) => v === "true"),
  QUEUE_PREFIX: z.string().default(""),
  WORK_BUCKET: z.string({ error: "WORK_BUCKET is required: the bucket for chunks, pages and PNGs" }).min(3),
  /** The bucket of source PDFs (infra sets it); never the work bucket, see {@link loadEnv}. */
  STAGING_BUCKET: z.string().min(3).optional(),
  /**
   * Queue workers: visibility timeout of their messages instead of the catalog's (heartbeats
   * extend it while a message is worked on). Short values make a killed worker's message come
   * back sooner; unset, the catalog's per-queue value applies.
   */
  VISIBILITY_TIMEOUT_SECONDS: intEnv("VISIBILITY_TIMEOUT_SECONDS", { min: 1, max: 43_200 }),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /**
   * Queue workers: serve `GET /livez` on this loopback port for the container's health check
   * (docker/healthcheck.sh); unset serves nothing.
   */
  HEALTH_PORT: intEnv("HEALTH_PORT", { min: 1, max: 65_535 }),
  /** Set by ECS in every container: the agent endpoint long jobs take scale-in protection from. */
  ECS_AGENT_URI: z.url({ error: "ECS_AGENT_URI must be a URL (ECS sets it)" }).optional(),
  /** Static credentials (the local stand-ins); unset on AWS, where the task role's are used. */
  AWS_ACCESS_KEY_ID: z.string().min(1).optional(),
  AWS_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  AWS_SESSION_TOKEN: z.string().min(1).optional(),
});
export type CommonEnv = z.infer<typeof commonEnv>;

/** Bounds and default of an {@link intEnv} variable. */
export interface IntEnvOptions {
  /** Smallest value allowed. @defaultValue 0 */
  min?: number;
  /** Largest value allowed. @defaultValue no limit */
  max?: number;
  /** Value when the variable is unset. @defaultValue none: the variable is optional (`undefined`) */
  default?: number;
}

/**
 * A whole-number variable, coerced from its string, for a service's schema. Each message names
 * the variable and what it must be: `must be a whole number`, `must be at least 1`, `must be at most 64`.
 */
export function intEnv(name: string, opts: IntEnvOptions & { default: number }): z.ZodDefault<z.ZodCoercedNumber>;
export function intEnv(name: string, opts?: IntEnvOptions): z.ZodOptional<z.ZodCoercedNumber>;
export function intEnv(name: string, opts: IntEnvOptions = {}): z.ZodDefault<z.ZodCoercedNumber> | z.ZodOptional<z.ZodCoercedNumber> {
  const min = opts.min ?? 0;
  let n = z.coerce
    .number({ error: `${name} must be a whole number` })
    .int(`${name} must be a whole number`)
    .min(min, `${name} must be at least ${min}`);
  if (opts.max !== undefined) n = n.max(opts.max, `${name} must be at most ${opts.max}`);
  return opts.default === undefined ? n.optional() : n.default(opts.default);
}

/** Thrown by loadEnv with one line per bad variable, naming it and how to fix it. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/**
 * Parses `env` against a service's schema; never reads process.env itself. Besides each
 * variable's own checks it refuses a staging bucket that is the work bucket: the pipeline
 * would list its own chunks, pages and PNGs as sources, and every batch's files would be in
 * reach of every key allowed that bucket.
 */
export function loadEnv<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.infer<S> {
  const parsed = schema.safeParse(env);
  const issues = parsed.success ? [] : parsed.error.issues.map((i) => `  ${i.path.join(".") || "(env)"}: ${i.message}`);
  if (env.STAGING_BUCKET !== undefined && env.STAGING_BUCKET === env.WORK_BUCKET) {
    issues.push(`  STAGING_BUCKET: must not be WORK_BUCKET (${env.WORK_BUCKET}): the work bucket holds the pipeline's own files and is never a source`);
  }
  if (issues.length === 0) return (parsed as { data: z.infer<S> }).data;
  throw new ConfigError(`invalid configuration:\n${issues.join("\n")}`);
}

/**
 * The static credentials of `env`, as an SDK client option (`{}` on AWS, where the task role's
 * come from the SDK's default chain). Passed on explicitly so that an `env` other than
 * process.env (a test's) is honoured too; the default chain reads process.env only.
 */
export function awsCredentials(env: CommonEnv): { credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } } {
  if (!env.AWS_ACCESS_KEY_ID || !env.AWS_SECRET_ACCESS_KEY) return {};
  return {
    credentials: {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN && { sessionToken: env.AWS_SESSION_TOKEN }),
    },
  };
}

/** AWS SDK clients for the configured endpoints (local stand-ins or AWS). */
export function createAwsClients(env: CommonEnv): { s3: S3Client; sqs: SQSClient } {
  const credentials = awsCredentials(env);
  return {
    s3: createS3Client({
      region: env.AWS_REGION,
      forcePathStyle: env.S3_FORCE_PATH_STYLE,
      ...credentials,
      ...(env.AWS_ENDPOINT_URL_S3 ? { endpoint: env.AWS_ENDPOINT_URL_S3 } : {}),
    }),
    sqs: new SQSClient({
      region: env.AWS_REGION,
      ...credentials,
      ...(env.AWS_ENDPOINT_URL_SQS ? { endpoint: env.AWS_ENDPOINT_URL_SQS } : {}),
    }),
  };
}
