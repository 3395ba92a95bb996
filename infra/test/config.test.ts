import { describe, expect, it } from "vitest";
import { configFromContext, defaultSizes } from "../lib/config.js";
import { DEFAULT_INSTANCE_TYPE, limitsFromCapacity, REFERENCE_REQUESTS_PER_SECOND_PER_VCPU } from "../lib/model-capacity.js";
import { targetBacklogPerTask } from "../lib/queue-scaling.js";

const from = (ctx: Record<string, unknown>) => configFromContext((k) => ctx[k]);
const certificateArn = "arn:aws:acm:eu-west-1:123456789012:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
const model = { modelEndpointUrl: "https://model.example.com/invocations", certificateArn };

describe("configFromContext", () => {
  it("takes at most one model endpoint, and deploys the model tier when none is named", () => {
    expect(() => from({ ...model, sagemakerEndpointName: "scorer" })).toThrow(/at most one.*modelEndpointUrl.*sagemakerEndpointName/);
    expect(from({ sagemakerEndpointName: "scorer", certificateArn })).toMatchObject({ sagemakerEndpointName: "scorer", modelTier: undefined });
    expect(from(model).modelTier).toBeUndefined();
    expect(() => from({ certificateArn, modelEndpointUrl: "model.example.com" })).toThrow(/http\(s\) URL/);
    const tier = from({ certificateArn }).modelTier!;
    expect(tier.instanceType).toBe(DEFAULT_INSTANCE_TYPE);
    expect(tier.imageUri).toBeUndefined();
    expect(tier.capacity).toEqual({ requestsPerSecondPerVcpu: REFERENCE_REQUESTS_PER_SECOND_PER_VCPU, vcpusPerInstance: 2, minInstances: 1, maxInstances: 4 });
    expect(tier.limits).toEqual(limitsFromCapacity(tier.capacity));
    expect(() => from({ certificateArn, modelApiKeySecretName: "docpipe/model-key" })).toThrow(/"modelApiKeySecretName" goes with modelEndpointUrl/);
  });

  it("derives the model tier's limits from the measured capacity, each overridable, and checks them", () => {
    const l = limitsFromCapacity({ requestsPerSecondPerVcpu: 10, vcpusPerInstance: 4, minInstances: 2, maxInstances: 5 });
    // 40/s an instance: 90% of 5 instances, one second of the 2-instance floor, the rate for a day, 70% of a minute.
    expect(l).toEqual({ perInstancePerSecond: 40, rateLimit: 180, burstLimit: 80, quotaPerDay: 180 * 86_400, invocationsPerInstancePerMinute: 1680 });
    const tier = from({ certificateArn, modelMaxInstances: "8", modelRateLimit: "50", modelTargetInvocationsPerMinute: "600" }).modelTier!;
    expect(tier.limits).toMatchObject({ rateLimit: 50, invocationsPerInstancePerMinute: 600, burstLimit: limitsFromCapacity(tier.capacity).burstLimit });
    expect(tier.capacity.maxInstances).toBe(8);
    expect(() => from({ certificateArn, modelInstanceType: "c5.large" })).toThrow(/"modelInstanceType" must be a SageMaker instance type/);
    expect(() => from({ certificateArn, modelInstanceType: "ml.g5.xlarge" })).toThrow(/"modelVcpusPerInstance" is needed for ml.g5.xlarge/);
    expect(from({ certificateArn, modelInstanceType: "ml.g5.xlarge", modelVcpusPerInstance: "4" }).modelTier!.capacity.vcpusPerInstance).toBe(4);
    expect(() => from({ certificateArn, modelMinInstances: "3", modelMaxInstances: "2" })).toThrow(/"modelMaxInstances" must not be below/);
    expect(() => from({ certificateArn, modelBurstLimit: "2.5" })).toThrow(/"modelBurstLimit" must be a whole number/);
    expect(() => from({ certificateArn, modelImageUri: "docker.io/acme/scorer:1" })).toThrow(/"modelImageUri" must be an ECR image/);
    const own = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/scorer:1";
    // Another model's throughput is not ours: its figure must be given.
    expect(() => from({ certificateArn, modelImageUri: own })).toThrow(/"modelRequestsPerSecondPerVcpu" is needed with modelImageUri/);
    expect(from({ certificateArn, modelImageUri: own, modelRequestsPerSecondPerVcpu: "3" }).modelTier).toMatchObject({ imageUri: own, capacity: { requestsPerSecondPerVcpu: 3 } });
  });

  it("fills defaults: a new staging bucket, a database that pauses, workers on Spot", () => {
    const c = from(model);
    expect(c.stagingBucketName).toBeUndefined();
    expect(c.databaseMinCapacity).toBe(0);
    expect(c.useSpot).toBe(true);
    expect(c.onDemandBaseTasks).toBe(1);
    expect(c.queuePrefix).toBe("docpipe-");
    expect(c.sizes).toEqual(defaultSizes);
  });

  it("reads CLI strings as numbers and booleans and rejects nonsense, naming the key", () => {
    const c = from({ ...model, natGateways: "2", useSpot: "false", deletionProtection: "false" });
    expect(c).toMatchObject({ natGateways: 2, useSpot: false, deletionProtection: false });
    expect(() => from({ ...model, natGateways: "many" })).toThrow(/"natGateways" must be a number from 1 to 3/);
    expect(() => from({ ...model, useSpot: "yes" })).toThrow(/"useSpot" must be true or false/);
    expect(() => from({ ...model, logRetentionDays: "10" })).toThrow(/"logRetentionDays" must be one of/);
    expect(() => from({ ...model, databaseMinCapacity: "8", databaseMaxCapacity: "4" })).toThrow(/databaseMaxCapacity/);
    expect(() => from({ ...model, alarmEmail: "ops" })).toThrow(/"alarmEmail"/);
    expect(() => from({ ...model, modelRoleArn: "page-scorer" })).toThrow(/"modelRoleArn" must be an IAM role ARN/);
  });

  it("merges per-service size overrides over the defaults and checks the bounds", () => {
    const c = from({ ...model, serviceSizes: '{"page-converter":{"maxTasks":400,"cpu":4096,"memoryMiB":8192}}' });
    expect(c.sizes["page-converter"]).toEqual({ ...defaultSizes["page-converter"], maxTasks: 400, cpu: 4096, memoryMiB: 8192 });
    expect(c.sizes["splitter-large"]).toEqual(defaultSizes["splitter-large"]);
    expect(() => from({ ...model, serviceSizes: '{"renderer":{}}' })).toThrow(/unknown service "renderer"/);
    expect(() => from({ ...model, serviceSizes: "{maxTasks:1}" })).toThrow(/must be JSON/);
    expect(() => from({ ...model, serviceSizes: '{"failsafe":{"minTasks":3,"maxTasks":2}}' })).toThrow(/minTasks <= maxTasks/);
  });
});

describe("a model API key of your own", () => {
  it("takes its secret's KMS key only with the secret, as a key ARN", () => {
    const key = "arn:aws:kms:eu-west-1:123456789012:key/1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809";
    expect(from({ ...model, modelApiKeySecretName: "docpipe/k", modelApiKeySecretKmsKeyArn: key }).modelApiKeySecretKmsKeyArn).toBe(key);
    expect(() => from({ ...model, modelApiKeySecretKmsKeyArn: key })).toThrow(/give -c modelApiKeySecretName=/);
    expect(() => from({ ...model, modelApiKeySecretName: "docpipe/k", modelApiKeySecretKmsKeyArn: "alias/k" })).toThrow(/"modelApiKeySecretKmsKeyArn" must be a KMS key ARN/);
  });
});

describe("an existing staging bucket", () => {
  it("takes its KMS key only with the bucket, as a key ARN", () => {
    const key = "arn:aws:kms:eu-west-1:123456789012:key/1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809";
    expect(from({ ...model, stagingBucketName: "acme", stagingBucketKmsKeyArn: key }).stagingBucketKmsKeyArn).toBe(key);
    expect(() => from({ ...model, stagingBucketKmsKeyArn: key })).toThrow(/give -c stagingBucketName=/);
    expect(() => from({ ...model, stagingBucketName: "acme", stagingBucketKmsKeyArn: "alias/scans" })).toThrow(/must be a KMS key ARN/);
  });
});

describe("HTTPS", () => {
  it("refuses to serve the API without a certificate unless plain HTTP is asked for, naming both ways out", () => {
    const { certificateArn: _, ...noCert } = model;
    expect(() => from(noCert)).toThrow(/-c certificateArn=arn:aws:acm:.*-c allowHttp=true/);
    expect(from({ ...noCert, allowHttp: "true" })).toMatchObject({ allowHttp: true, certificateArn: undefined });
    expect(from(model)).toMatchObject({ allowHttp: false, certificateArn });
    expect(() => from({ ...model, certificateArn: "my-cert" })).toThrow(/"certificateArn" must be an ACM certificate ARN/);
    expect(() => from({ ...noCert, allowHttp: "yes" })).toThrow(/"allowHttp" must be true or false/);
  });
});

describe("targetBacklogPerTask", () => {
  it("is the backlog one task clears within the acceptable latency", () => {
    // 2 pages at a time, 2 s a page: 1 page/s, so 300 waiting pages clear in 300 s.
    expect(targetBacklogPerTask({ concurrency: 2, secondsPerMessage: 2, acceptableLatencySeconds: 300 })).toBe(300);
    // A 2-minute large split, one at a time: at most 3 may wait per task for a 5-minute goal.
    expect(targetBacklogPerTask({ concurrency: 1, secondsPerMessage: 120, acceptableLatencySeconds: 300 })).toBe(3);
    // Never below one message per task, or target tracking would never scale in.
    expect(targetBacklogPerTask({ concurrency: 1, secondsPerMessage: 3600, acceptableLatencySeconds: 60 })).toBe(1);
  });
});
