/**
 * The one place where the model tier's limits come from: the reference model's measured
 * throughput, the instance's vCPUs, and the fleet's bounds. The usage plan's rate, burst and
 * quota and the variant's autoscaling target are all derived here, so API Gateway sheds load
 * (429) before the endpoint is overrun. Every derived value can be overridden by context
 * ({@link modelTierFromContext}); a team running its own model sets `modelRequestsPerSecondPerVcpu`
 * to its own measurement and everything else follows.
 */

import { ConfigError, int, num, str, type Lookup } from "./context.js";

/**
 * Invocations per second one vCPU of the reference model serves at a realistic page (Letter
 * at 150 dpi, the page converter's default). Measured with `pnpm bench:model`, which also
 * prints the load average of the run; see bench/README.md for the recorded figures. Round
 * down: this is what the plan promises the endpoint can carry.
 */
export const REFERENCE_REQUESTS_PER_SECOND_PER_VCPU = 170;

/** vCPUs of the real-time instance types worth running the reference model on (CPU only). */
export const instanceVcpus: Readonly<Record<string, number>> = {
  "ml.t2.medium": 2,
  "ml.m5.large": 2,
  "ml.m5.xlarge": 4,
  "ml.m5.2xlarge": 8,
  "ml.c5.large": 2,
  "ml.c5.xlarge": 4,
  "ml.c5.2xlarge": 8,
  "ml.c5.4xlarge": 16,
  "ml.c6i.large": 2,
  "ml.c6i.xlarge": 4,
  "ml.c6i.2xlarge": 8,
  "ml.c6i.4xlarge": 16,
};

/**
 * Share of an instance's measured capacity the autoscaling target aims for: the fleet grows
 * before its instances saturate, leaving room for a burst while a new instance starts (a few
 * minutes on SageMaker).
 */
export const TARGET_UTILIZATION = 0.7;

/**
 * Share of the largest fleet's measured capacity the usage plan lets through: at most this
 * much load ever reaches the endpoint, so it answers at a steady latency instead of queueing
 * until calls time out.
 */
export const PLAN_HEADROOM = 0.9;

export interface ModelCapacity {
  /** Measured invocations per second per vCPU. */
  readonly requestsPerSecondPerVcpu: number;
  readonly vcpusPerInstance: number;
  readonly minInstances: number;
  readonly maxInstances: number;
}

export interface ModelLimits {
  /** Invocations per second one instance serves. */
  readonly perInstancePerSecond: number;
  /** Usage plan steady rate (requests per second), what the largest fleet carries with headroom. */
  readonly rateLimit: number;
  /**
   * Usage plan burst (token bucket size): one second of the smallest fleet's capacity, so a
   * burst after a quiet spell lands on an endpoint that has scaled in and still finishes in
   * about a second.
   */
  readonly burstLimit: number;
  /**
   * Usage plan quota per day: what the rate allows in a day. It does not bind before the rate
   * does; lower it (`modelQuotaPerDay`) to cap a day's pages, and with them the day's cost.
   */
  readonly quotaPerDay: number;
  /** Variant target tracking on SageMakerVariantInvocationsPerInstance (invocations per instance per minute). */
  readonly invocationsPerInstancePerMinute: number;
}

/** Derives the plan and the autoscaling target from the measured capacity (see the constants above). */
export function limitsFromCapacity(c: ModelCapacity): ModelLimits {
  const perInstancePerSecond = c.requestsPerSecondPerVcpu * c.vcpusPerInstance;
  const rateLimit = Math.max(1, Math.floor(perInstancePerSecond * c.maxInstances * PLAN_HEADROOM));
  return {
    perInstancePerSecond,
    rateLimit,
    burstLimit: Math.max(1, Math.ceil(perInstancePerSecond * c.minInstances)),
    quotaPerDay: rateLimit * 86_400,
    invocationsPerInstancePerMinute: Math.max(1, Math.floor(perInstancePerSecond * 60 * TARGET_UTILIZATION)),
  };
}

/** The model tier's settings: what to run, on what, and the limits in front of it. */
export interface ModelTierConfig {
  /** ECR image of your own model (same contract as the reference model); unset builds the reference model from docker/. */
  readonly imageUri?: string;
  /** SageMaker real-time instance type. @defaultValue "ml.c5.large" */
  readonly instanceType: string;
  readonly capacity: ModelCapacity;
  /** Derived from `capacity` by {@link limitsFromCapacity}, then any override from context. */
  readonly limits: ModelLimits;
}

export const DEFAULT_INSTANCE_TYPE = "ml.c5.large";
export const DEFAULT_MIN_INSTANCES = 1;
export const DEFAULT_MAX_INSTANCES = 4;

const ECR_IMAGE = /^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?\/[a-z0-9._/-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$/;

/**
 * Reads the model tier's context values. Every limit defaults to what the measured capacity
 * gives (see {@link limitsFromCapacity}); `modelRateLimit`, `modelBurstLimit`, `modelQuotaPerDay`
 * and `modelTargetInvocationsPerMinute` override one each.
 */
export function modelTierFromContext(get: Lookup): ModelTierConfig {
  const imageUri = str(get, "modelImageUri");
  if (imageUri && !ECR_IMAGE.test(imageUri)) {
    throw new ConfigError(
      `context "modelImageUri" must be an ECR image SageMaker can pull (123456789012.dkr.ecr.eu-west-1.amazonaws.com/my-model:1.0), got ${imageUri}`,
    );
  }
  const instanceType = str(get, "modelInstanceType") ?? DEFAULT_INSTANCE_TYPE;
  if (!/^ml\.[a-z0-9]+\.[a-z0-9]+$/.test(instanceType)) {
    throw new ConfigError(`context "modelInstanceType" must be a SageMaker instance type such as ml.c5.large, got ${instanceType}`);
  }
  const knownVcpus = instanceVcpus[instanceType];
  const vcpusPerInstance = int(get, "modelVcpusPerInstance", knownVcpus ?? 0, 0, 192);
  if (vcpusPerInstance === 0) {
    throw new ConfigError(`context "modelVcpusPerInstance" is needed for ${instanceType} (known types: ${Object.keys(instanceVcpus).join(", ")})`);
  }
  const minInstances = int(get, "modelMinInstances", DEFAULT_MIN_INSTANCES, 1, 100);
  const maxInstances = int(get, "modelMaxInstances", Math.max(DEFAULT_MAX_INSTANCES, minInstances), 1, 100);
  if (maxInstances < minInstances) throw new ConfigError(`context "modelMaxInstances" must not be below modelMinInstances`);
  // A team's own image has its own throughput: without a figure for it, ours would be a guess.
  const requestsPerSecondPerVcpu = num(get, "modelRequestsPerSecondPerVcpu", imageUri ? 0 : REFERENCE_REQUESTS_PER_SECOND_PER_VCPU, 0, 100_000);
  if (requestsPerSecondPerVcpu === 0) {
    throw new ConfigError(`context "modelRequestsPerSecondPerVcpu" is needed with modelImageUri: measure your model's invocations per second per vCPU`);
  }
  const capacity = { requestsPerSecondPerVcpu, vcpusPerInstance, minInstances, maxInstances };
  const derived = limitsFromCapacity(capacity);
  return {
    ...(imageUri && { imageUri }),
    instanceType,
    capacity,
    limits: {
      ...derived,
      rateLimit: num(get, "modelRateLimit", derived.rateLimit, 0.1, 1_000_000),
      burstLimit: int(get, "modelBurstLimit", derived.burstLimit, 1, 1_000_000),
      quotaPerDay: int(get, "modelQuotaPerDay", derived.quotaPerDay, 1, 1e12),
      invocationsPerInstancePerMinute: int(get, "modelTargetInvocationsPerMinute", derived.invocationsPerInstancePerMinute, 1, 10_000_000),
    },
  };
}
