/**
 * Deployment settings of the docpipe stack, read from CDK context (`cdk deploy -c key=value`,
 * or the `context` block of cdk.json). Everything has a default except the API's certificate
 * (or an explicit `allowHttp`), so a first deploy needs one flag; a deploy that names no model
 * endpoint gets its own (the model tier, lib/model-tier.ts).
 */

import { bool, ConfigError, num, str, type Lookup } from "./context.js";
import { modelTierFromContext, type ModelTierConfig } from "./model-capacity.js";

export { ConfigError } from "./context.js";

/** The deployables that run as ECS services. The splitter image runs twice, once per role. */
export const serviceIds = [
  "ingestion",
  "chunking-orchestrator",
  "splitter-large",
  "splitter-small",
  "page-converter",
  "inference-client",
  "failsafe",
] as const;
export type ServiceId = (typeof serviceIds)[number];

/** Task size and scaling bounds of one ECS service. */
export interface ServiceSize {
  /** Fargate CPU units (256 = 0.25 vCPU). */
  readonly cpu: number;
  /** Fargate memory in MiB; must be a valid pairing with `cpu`. */
  readonly memoryMiB: number;
  /** Task ephemeral storage in GiB (21..200); big documents are downloaded to disk. @defaultValue 21 */
  readonly ephemeralStorageGiB?: number;
  /** Lower bound of the service's task count; 0 lets an idle worker scale to zero. */
  readonly minTasks: number;
  readonly maxTasks: number;
  /** Messages a task works on at once (passed to the service as WORKER_CONCURRENCY). */
  readonly concurrency: number;
  /** Measured seconds one message takes on one worker slot; with the latency goal it sets the scaling target. */
  readonly secondsPerMessage: number;
}

export interface DocpipeConfig {
  /** Name of an existing bucket holding the PDFs to ingest; unset creates a staging bucket. */
  readonly stagingBucketName?: string;
  /**
   * The KMS key an existing staging bucket encrypts its objects with (SSE-KMS): the stages that
   * read sources get kms:Decrypt on it, through S3 only. Unset: SSE-S3 or no encryption.
   */
  readonly stagingBucketKmsKeyArn?: string;
  /** HTTPS URL of your model endpoint (API Gateway in front of SageMaker). At most one of this and `sagemakerEndpointName`. */
  readonly modelEndpointUrl?: string;
  /** Secrets Manager secret (name) holding the model endpoint's API key; the inference client reads it with its task role. */
  readonly modelApiKeySecretName?: string;
  /** The customer managed KMS key that secret is encrypted with: the inference client may decrypt with it, through Secrets Manager only. */
  readonly modelApiKeySecretKmsKeyArn?: string;
  /**
   * IAM role of the model endpoint (for example its SageMaker execution role). The model reads
   * each page's PNG from the work bucket itself, so this role may GetObject on the images.
   */
  readonly modelRoleArn?: string;
  /** Name of a SageMaker endpoint the inference client invokes directly. */
  readonly sagemakerEndpointName?: string;
  /** The model tier to deploy: set when neither `modelEndpointUrl` nor `sagemakerEndpointName` is. */
  readonly modelTier?: ModelTierConfig;
  /** E-mail address subscribed to the alarm topic; unset leaves the topic without subscribers. */
  readonly alarmEmail?: string;
  /** Prefix of every queue name, so two deployments can share an account. @defaultValue "docpipe-" */
  readonly queuePrefix: string;
  /** NAT gateways of the VPC; 1 keeps idle cost down, 2 survives an AZ outage. @defaultValue 1 */
  readonly natGateways: number;
  /** CIDR allowed to reach the internal ingestion load balancer. @defaultValue the VPC's CIDR */
  readonly ingestionAllowedCidr?: string;
  /**
   * ACM certificate for the ingestion load balancer: HTTPS on 443, and port 80 redirects to it.
   * Required unless `allowHttp` is set, because API keys would otherwise cross the network in clear text.
   */
  readonly certificateArn?: string;
  /** Serve the API over plain HTTP on port 80 when no certificate is given. @defaultValue false */
  readonly allowHttp: boolean;
  /** Aurora Serverless v2 capacity in ACUs; a minimum of 0 pauses the database when idle. */
  readonly databaseMinCapacity: number;
  readonly databaseMaxCapacity: number;
  /** Protects the database and its snapshot from `cdk destroy`. @defaultValue true */
  readonly deletionProtection: boolean;
  /** How long a page may wait in a queue before its stage should have scaled up for it. @defaultValue 300 */
  readonly acceptableLatencySeconds: number;
  /** Alarm when the oldest message of a queue is older than this. @defaultValue 3600 */
  readonly maxMessageAgeSeconds: number;
  /** Days before intermediate chunk and single-page PDFs are deleted from the work bucket. @defaultValue 7 */
  readonly intermediateRetentionDays: number;
  /** Days CloudWatch keeps service logs. @defaultValue 30 */
  readonly logRetentionDays: number;
  /** Run queue workers on Fargate Spot (they are idempotent and stop gracefully on the 2-minute notice). @defaultValue true */
  readonly useSpot: boolean;
  /**
   * Tasks of each Spot service that run on on-demand Fargate before any runs on Spot (the
   * capacity provider strategy's base), so a stage keeps moving when Spot capacity is short. @defaultValue 1
   */
  readonly onDemandBaseTasks: number;
  readonly sizes: Record<ServiceId, ServiceSize>;
}

/** Task sizes per role: the large splitter holds multi-gigabyte files, the converter renders on every core. */
export const defaultSizes: Record<ServiceId, ServiceSize> = {
  ingestion: { cpu: 512, memoryMiB: 1024, minTasks: 1, maxTasks: 4, concurrency: 1, secondsPerMessage: 1 },
  "chunking-orchestrator": {
    cpu: 512,
    memoryMiB: 1024,
    minTasks: 0,
    maxTasks: 20,
    concurrency: 8,
    secondsPerMessage: 0.5,
  },
  "splitter-large": {
    cpu: 2048,
    memoryMiB: 8192,
    ephemeralStorageGiB: 100,
    minTasks: 0,
    maxTasks: 20,
    concurrency: 1,
    secondsPerMessage: 120,
  },
  "splitter-small": { cpu: 1024, memoryMiB: 2048, minTasks: 0, maxTasks: 50, concurrency: 4, secondsPerMessage: 2 },
  "page-converter": { cpu: 2048, memoryMiB: 4096, minTasks: 0, maxTasks: 200, concurrency: 2, secondsPerMessage: 2 },
  "inference-client": {
    cpu: 512,
    memoryMiB: 1024,
    minTasks: 0,
    maxTasks: 50,
    concurrency: 16,
    secondsPerMessage: 1,
  },
  // Sized like the large splitter: it breaks down the very documents the splitter gave up on.
  failsafe: {
    cpu: 2048,
    memoryMiB: 8192,
    ephemeralStorageGiB: 100,
    minTasks: 0,
    maxTasks: 2,
    concurrency: 1,
    secondsPerMessage: 30,
  },
};

/** Merges `-c serviceSizes='{"page-converter":{"maxTasks":400}}'` over the defaults. */
const sizes = (get: Lookup): Record<ServiceId, ServiceSize> => {
  const raw = get("serviceSizes");
  if (raw === undefined || raw === null || raw === "") return defaultSizes;
  let parsed: unknown;
  try {
    parsed = typeof raw === "string" ? JSON.parse(raw) : raw;
  } catch (cause) {
    throw new ConfigError(`context "serviceSizes" must be JSON, e.g. '{"page-converter":{"maxTasks":400}}'`, {
      cause,
    });
  }
  if (typeof parsed !== "object" || parsed === null) throw new ConfigError(`context "serviceSizes" must be an object`);
  const out = { ...defaultSizes };
  for (const [id, override] of Object.entries(parsed)) {
    if (!(serviceIds as readonly string[]).includes(id)) {
      throw new ConfigError(`context "serviceSizes" names unknown service "${id}"; known: ${serviceIds.join(", ")}`);
    }
    const merged = { ...defaultSizes[id as ServiceId], ...(override as Partial<ServiceSize>) };
    if (merged.minTasks < 0 || merged.maxTasks < Math.max(1, merged.minTasks)) {
      throw new ConfigError(`context "serviceSizes.${id}": need 0 <= minTasks <= maxTasks and maxTasks >= 1`);
    }
    out[id as ServiceId] = merged;
  }
  return out;
};

/** The retention periods CloudWatch Logs accepts. */
const retentionDays = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

const retention = (get: Lookup): number => {
  const days = num(get, "logRetentionDays", 30, 1, 3653);
  if (!retentionDays.includes(days)) {
    throw new ConfigError(`context "logRetentionDays" must be one of ${retentionDays.join(", ")}, got ${days}`);
  }
  return days;
};

const arn = (get: Lookup, key: string): string | undefined => {
  const v = str(get, key);
  if (v && !/^arn:aws[a-z-]*:iam::\d{12}:role\/.+/.test(v)) {
    throw new ConfigError(`context "${key}" must be an IAM role ARN (arn:aws:iam::123456789012:role/name), got ${v}`);
  }
  return v;
};

const kmsKeyArn = (get: Lookup, key: string): string | undefined => {
  const v = str(get, key);
  if (v && !/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[\w-]+$/.test(v)) {
    throw new ConfigError(`context "${key}" must be a KMS key ARN (arn:aws:kms:eu-west-1:123456789012:key/...), got ${v}`);
  }
  return v;
};

/** Reads and checks the stack's settings; `get` is `app.node.tryGetContext` or a test's map. */
export function configFromContext(get: Lookup): DocpipeConfig {
  const modelEndpointUrl = str(get, "modelEndpointUrl");
  const sagemakerEndpointName = str(get, "sagemakerEndpointName");
  if (modelEndpointUrl && sagemakerEndpointName) {
    throw new ConfigError(
      "set at most one of the context keys modelEndpointUrl (-c modelEndpointUrl=https://...) " +
        "and sagemakerEndpointName (-c sagemakerEndpointName=my-endpoint); with neither, the stack deploys its own model tier",
    );
  }
  if (modelEndpointUrl && !/^https?:\/\//.test(modelEndpointUrl)) {
    throw new ConfigError(`context "modelEndpointUrl" must be an http(s) URL, got ${modelEndpointUrl}`);
  }
  const modelApiKeySecretName = str(get, "modelApiKeySecretName");
  if (!modelEndpointUrl && modelApiKeySecretName) {
    throw new ConfigError(
      `context "modelApiKeySecretName" goes with modelEndpointUrl: the model tier keeps its own key, and InvokeEndpoint (sagemakerEndpointName) takes none`,
    );
  }
  const modelApiKeySecretKmsKeyArn = kmsKeyArn(get, "modelApiKeySecretKmsKeyArn");
  if (modelApiKeySecretKmsKeyArn && !modelApiKeySecretName) {
    throw new ConfigError(`context "modelApiKeySecretKmsKeyArn" is the key of your model API key's secret: give -c modelApiKeySecretName=... too`);
  }
  const alarmEmail = str(get, "alarmEmail");
  if (alarmEmail && !/^[^@\s]+@[^@\s]+$/.test(alarmEmail)) {
    throw new ConfigError(`context "alarmEmail" must be an e-mail address, got ${alarmEmail}`);
  }
  const stagingBucketName = str(get, "stagingBucketName");
  const stagingBucketKmsKeyArn = kmsKeyArn(get, "stagingBucketKmsKeyArn");
  if (stagingBucketKmsKeyArn && !stagingBucketName) {
    throw new ConfigError(`context "stagingBucketKmsKeyArn" is for an existing staging bucket: give -c stagingBucketName=... too (a bucket the stack creates uses SSE-S3)`);
  }
  const certificateArn = str(get, "certificateArn");
  if (certificateArn && !/^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate\/[\w-]+$/.test(certificateArn)) {
    throw new ConfigError(`context "certificateArn" must be an ACM certificate ARN (arn:aws:acm:eu-west-1:123456789012:certificate/...), got ${certificateArn}`);
  }
  const allowHttp = bool(get, "allowHttp", false);
  if (!certificateArn && !allowHttp) {
    throw new ConfigError(
      "the ingestion API needs HTTPS: give -c certificateArn=arn:aws:acm:<region>:<account>:certificate/<id> " +
        "(a certificate for the name you will call it by), or -c allowHttp=true to accept API keys in clear text",
    );
  }
  const databaseMinCapacity = num(get, "databaseMinCapacity", 0, 0, 256);
  const databaseMaxCapacity = num(get, "databaseMaxCapacity", 16, 1, 256);
  if (databaseMaxCapacity < databaseMinCapacity) {
    throw new ConfigError(`context "databaseMaxCapacity" must not be below databaseMinCapacity`);
  }
  return {
    stagingBucketName,
    stagingBucketKmsKeyArn,
    modelEndpointUrl,
    sagemakerEndpointName,
    modelTier: modelEndpointUrl || sagemakerEndpointName ? undefined : modelTierFromContext(get),
    modelApiKeySecretName,
    modelApiKeySecretKmsKeyArn,
    modelRoleArn: arn(get, "modelRoleArn"),
    alarmEmail,
    queuePrefix: str(get, "queuePrefix") ?? "docpipe-",
    natGateways: num(get, "natGateways", 1, 1, 3),
    ingestionAllowedCidr: str(get, "ingestionAllowedCidr"),
    certificateArn,
    allowHttp,
    databaseMinCapacity,
    databaseMaxCapacity,
    deletionProtection: bool(get, "deletionProtection", true),
    acceptableLatencySeconds: num(get, "acceptableLatencySeconds", 300, 30, 86_400),
    maxMessageAgeSeconds: num(get, "maxMessageAgeSeconds", 3600, 60, 1_209_600),
    intermediateRetentionDays: num(get, "intermediateRetentionDays", 7, 1, 3650),
    logRetentionDays: retention(get),
    useSpot: bool(get, "useSpot", true),
    onDemandBaseTasks: num(get, "onDemandBaseTasks", 1, 0, 100),
    sizes: sizes(get),
  };
}
