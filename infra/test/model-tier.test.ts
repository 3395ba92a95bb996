import { App, type CfnElement, Stack } from "aws-cdk-lib";
import { aws_iam as iam, aws_kms as kms, aws_s3 as s3, aws_secretsmanager as secretsmanager } from "aws-cdk-lib";
import { Template, type Template as TemplateType } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_INSTANCE_TYPE, instanceVcpus, limitsFromCapacity, modelTierFromContext, REFERENCE_REQUESTS_PER_SECOND_PER_VCPU } from "../lib/model-capacity.js";
import { QUOTA_RETRY_AFTER_SECONDS, THROTTLED_RETRY_AFTER_SECONDS } from "../lib/model-api.js";
import { ModelTier } from "../lib/model-tier.js";
import { grantSecretValue } from "../lib/services.js";
import { env, resources, synth, type Synthesized } from "./synth.js";

// A deploy that names no model endpoint: the stack brings its own model tier.
let s: Synthesized;
let t: TemplateType;
beforeAll(() => {
  s = synth({ alarmEmail: "ops@example.com", certificateArn: "arn:aws:acm:eu-west-1:123456789012:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0" });
  if (!s.template) throw new Error(`synthesis failed: ${String(s.error)}`);
  t = s.template;
});
afterAll(() => s?.cleanup());

const logicalId = (c: { node: { defaultChild?: unknown } }): string => s.stack.getLogicalId(c.node.defaultChild as CfnElement);
const tier = () => s.stack.modelTier!;
const defaults = () =>
  limitsFromCapacity({
    requestsPerSecondPerVcpu: REFERENCE_REQUESTS_PER_SECOND_PER_VCPU,
    vcpusPerInstance: instanceVcpus[DEFAULT_INSTANCE_TYPE]!,
    minInstances: 1,
    maxInstances: 4,
  });
const only = <T>(xs: Record<string, T>): [string, T] => {
  const entries = Object.entries(xs);
  expect(entries).toHaveLength(1);
  return entries[0]!;
};
type Statement = { Effect: string; Action: string | string[]; Resource: unknown };
/** Every Allow statement of every IAM policy, with the roles it is attached to. */
const allowStatements = () =>
  Object.values(resources(t, "AWS::IAM::Policy")).flatMap((p) =>
    (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement.filter((st) => st.Effect === "Allow").map((st) => ({
      ...st,
      actions: [st.Action].flat(),
      roles: (p.Properties.Roles as { Ref: string }[]).map((r) => r.Ref),
    })),
  );

describe("cdk synth without a model endpoint", () => {
  it("passes cdk-nag, every acknowledgment of the model tier with a reason", () => {
    expect(s.error).toBeUndefined();
    expect(s.report.pluginReports.flatMap((r) => r.violations.map((v) => v.ruleName))).toEqual([]);
    const acks = tier()
      .node.findAll()
      .flatMap((c) => c.node.metadata.filter((m) => m.type === "aws:cdk:acknowledged-rules"))
      .flatMap((m) => Object.entries(m.data as Record<string, string>));
    expect(acks.map(([id]) => id.replace(/^Annotation::/, ""))).toEqual(
      expect.arrayContaining(["AwsSolutions-APIG3", "AwsSolutions-APIG4", "AwsSolutions-COG4", "AwsSolutions-SMG4"]),
    );
    for (const [id, reason] of acks) expect(reason.trim().length, id).toBeGreaterThanOrEqual(20);
  });

  it("runs the reference model's image from docker/ on a SageMaker endpoint with one variant", () => {
    const [modelId, model] = only(resources(t, "AWS::SageMaker::Model"));
    const container = model.Properties.PrimaryContainer as { Image: { "Fn::Sub": string } };
    // The asset CDK builds from docker/Dockerfile's `model` target and pushes to the bootstrap repository.
    expect(container.Image["Fn::Sub"]).toMatch(/container-assets-123456789012-eu-west-1:[0-9a-f]{64}$/);
    const [, config] = only(resources(t, "AWS::SageMaker::EndpointConfig"));
    expect(config.Properties.ProductionVariants).toEqual([
      { VariantName: "AllTraffic", ModelName: { "Fn::GetAtt": [modelId, "ModelName"] }, InstanceType: "ml.c5.large", InitialInstanceCount: 1, InitialVariantWeight: 1 },
    ]);
    const [, endpoint] = only(resources(t, "AWS::SageMaker::Endpoint"));
    expect(endpoint.Properties).toMatchObject({ EndpointName: "Docpipe-model-ml-c5-large", RetainAllVariantProperties: true });
  });

  it("scales the variant between its bounds, tracking invocations per instance at the measured capacity's target", () => {
    const endpointId = logicalId({ node: { defaultChild: tier().endpoint.endpoint } });
    const [targetId, target] = only(
      Object.fromEntries(Object.entries(resources(t, "AWS::ApplicationAutoScaling::ScalableTarget")).filter(([, r]) => r.Properties.ServiceNamespace === "sagemaker")),
    );
    expect(target.Properties).toMatchObject({ MinCapacity: 1, MaxCapacity: 4, ScalableDimension: "sagemaker:variant:DesiredInstanceCount" });
    expect(JSON.stringify(target.Properties.ResourceId)).toBe(
      JSON.stringify({ "Fn::Join": ["", ["endpoint/", { "Fn::GetAtt": [endpointId, "EndpointName"] }, "/variant/AllTraffic"]] }),
    );
    t.hasResourceProperties("AWS::ApplicationAutoScaling::ScalingPolicy", {
      ScalingTargetId: { Ref: targetId },
      PolicyType: "TargetTrackingScaling",
      TargetTrackingScalingPolicyConfiguration: {
        PredefinedMetricSpecification: { PredefinedMetricType: "SageMakerVariantInvocationsPerInstance" },
        TargetValue: defaults().invocationsPerInstancePerMinute,
      },
    });
  });

  it("lets the endpoint's execution role read the page images and nothing else of the buckets", () => {
    const roleId = logicalId(tier().endpoint.executionRole);
    const s3Grants = allowStatements().filter((st) => st.roles.includes(roleId) && st.actions.some((a) => a.startsWith("s3:")));
    expect(s3Grants.map((st) => st.actions)).toEqual([["s3:GetObject"]]);
    expect(JSON.stringify(s3Grants[0]!.Resource)).toContain("/batches/*/documents/*/images/*");
  });

  it("fronts it with a REST API whose POST /invocations needs the key and calls InvokeEndpoint on that endpoint only", () => {
    const [, method] = only(resources(t, "AWS::ApiGateway::Method"));
    const integration = method.Properties.Integration as { Type: string; Uri: unknown; Credentials: { "Fn::GetAtt": [string, string] } };
    expect(method.Properties).toMatchObject({ HttpMethod: "POST", ApiKeyRequired: true });
    expect(integration.Type).toBe("AWS");
    expect(JSON.stringify(integration.Uri)).toContain(":apigateway:eu-west-1:runtime.sagemaker:path/endpoints/Docpipe-model-ml-c5-large/invocations");
    // The integration's role: InvokeEndpoint on exactly this endpoint, nothing more.
    const credentialsRole = integration.Credentials["Fn::GetAtt"][0];
    const grants = allowStatements().filter((st) => st.roles.includes(credentialsRole));
    expect(grants.map((st) => st.actions)).toEqual([["sagemaker:InvokeEndpoint"]]);
    const arn = JSON.stringify(grants[0]!.Resource);
    expect(arn).toMatch(/:sagemaker:eu-west-1:123456789012:endpoint\/docpipe-model-ml-c5-large"/);
    expect(arn).not.toContain("*");
    // Nobody else may invoke it: the inference client goes through the API.
    expect(allowStatements().filter((st) => st.actions.includes("sagemaker:InvokeEndpoint"))).toHaveLength(1);
    // The request is validated at the gateway against the contract.
    expect(method.Properties.RequestValidatorId).toBeDefined();
    const [, model] = only(resources(t, "AWS::ApiGateway::Model"));
    expect((model.Properties.Schema as { required: string[] }).required).toEqual(["bucket", "key"]);
  });

  it("puts a usage plan with the API key on the stage, with rate, burst and quota from the measured capacity", () => {
    const apiId = logicalId(tier().api.api);
    const stageId = logicalId({ node: { defaultChild: tier().api.api.deploymentStage.node.defaultChild } });
    const [planId, plan] = only(resources(t, "AWS::ApiGateway::UsagePlan"));
    const d = defaults();
    expect(plan.Properties).toMatchObject({
      Throttle: { RateLimit: d.rateLimit, BurstLimit: d.burstLimit },
      Quota: { Limit: d.quotaPerDay, Period: "DAY" },
      ApiStages: [{ ApiId: { Ref: apiId }, Stage: { Ref: stageId } }],
    });
    // The recorded figure per vCPU × 2 vCPU × 4 instances × 0.9 headroom; one second of one instance as burst.
    expect([d.rateLimit, d.burstLimit]).toEqual([Math.floor(REFERENCE_REQUESTS_PER_SECOND_PER_VCPU * 2 * 4 * 0.9), REFERENCE_REQUESTS_PER_SECOND_PER_VCPU * 2]);
    const [keyId] = only(resources(t, "AWS::ApiGateway::ApiKey"));
    const [, planKey] = only(resources(t, "AWS::ApiGateway::UsagePlanKey"));
    expect(planKey.Properties).toEqual({ KeyId: { Ref: keyId }, KeyType: "API_KEY", UsagePlanId: { Ref: planId } });
    // Over the plan, API Gateway answers 429 and says when to come back.
    t.hasResourceProperties("AWS::ApiGateway::GatewayResponse", {
      ResponseType: "THROTTLED",
      StatusCode: "429",
      ResponseParameters: { "gatewayresponse.header.Retry-After": `'${THROTTLED_RETRY_AFTER_SECONDS}'` },
    });
    t.hasResourceProperties("AWS::ApiGateway::GatewayResponse", {
      ResponseType: "QUOTA_EXCEEDED",
      StatusCode: "429",
      ResponseParameters: { "gatewayresponse.header.Retry-After": `'${QUOTA_RETRY_AFTER_SECONDS}'` },
    });
  });

  it("keeps the key in a secret that only the inference client's task role can read, and points the client at the API", () => {
    const secretId = logicalId(tier().apiKeySecret);
    const [, key] = only(resources(t, "AWS::ApiGateway::ApiKey"));
    expect(key.Properties.Value).toEqual({ "Fn::Join": ["", ["{{resolve:secretsmanager:", { Ref: secretId }, ":SecretString:::}}"]] });
    // Whoever could read it: an action that reads secret values, on this secret or on a pattern that could match it.
    const readsSecrets = (a: string) => a === "*" || /^secretsmanager:(\*|Get\*|GetSecretValue)$/.test(a);
    const couldMatch = (r: unknown) => r === "*" || JSON.stringify(r) === JSON.stringify({ Ref: secretId }) || /secretsmanager.*\*/.test(JSON.stringify(r));
    const readers = allowStatements().filter((st) => st.actions.some(readsSecrets) && [st.Resource].flat().some(couldMatch));
    const client = s.stack.services.byId["inference-client"];
    expect(readers.map((st) => [st.roles, st.actions])).toEqual([[[logicalId(client.taskRole)], ["secretsmanager:GetSecretValue"]]]);
    // Not the execution role (ECS no longer injects it) nor anyone else, and no resource policy opens it.
    expect(JSON.stringify(resources(t, "AWS::IAM::Policy")).split(`"Ref":"${secretId}"`)).toHaveLength(2);
    expect(resources(t, "AWS::SecretsManager::ResourcePolicy")).toEqual({});
    // Encrypted with Secrets Manager's own key: no KMS grant is needed, and none is made.
    expect(resources(t, "AWS::SecretsManager::Secret")[secretId]!.Properties.KmsKeyId).toBeUndefined();
    // The client is told which secret to read (and reads it itself); its URL is the API's. No task has it as a container secret.
    const taskDefs = resources(t, "AWS::ECS::TaskDefinition");
    const [container] = taskDefs[logicalId(client.taskDefinition)]!.Properties.ContainerDefinitions as {
      Secrets: { Name: string; ValueFrom: unknown }[];
      Environment: { Name: string; Value: unknown }[];
    }[];
    const env = Object.fromEntries(container!.Environment.map((e) => [e.Name, e.Value]));
    expect(env.MODEL_API_KEY_SECRET).toEqual({ Ref: secretId });
    expect(container!.Secrets.map((x) => x.Name).sort()).toEqual(["DB_PASSWORD", "DB_USERNAME"]);
    const stageId = logicalId({ node: { defaultChild: tier().api.api.deploymentStage.node.defaultChild } });
    expect(env.MODEL_URL).toEqual({
      "Fn::Join": ["", ["https://", { Ref: logicalId(tier().api.api) }, ".execute-api.eu-west-1.", { Ref: "AWS::URLSuffix" }, "/", { Ref: stageId }, "/invocations"]],
    });
    for (const [id, td] of Object.entries(taskDefs)) {
      if (id !== logicalId(client.taskDefinition)) expect(JSON.stringify(td.Properties), id).not.toContain(secretId);
    }
  });

  it("outputs the API's URL once, as ModelApiUrl: CDK's default endpoint output of the REST API is gone", () => {
    const outputs = t.toJSON().Outputs as Record<string, { Value: unknown }>;
    const apiRef = JSON.stringify({ Ref: logicalId(tier().api.api) });
    expect(Object.keys(outputs).filter((k) => JSON.stringify(outputs[k]!.Value).includes(apiRef))).toEqual(["ModelApiUrl"]);
    expect(JSON.stringify(outputs.ModelApiUrl!.Value)).toContain("/invocations");
  });

  it("logs every call and alarms to the topic on 5xx, 4xx other than throttling, latency and sustained throttling", () => {
    const accessLogsId = logicalId(tier().api.accessLogs);
    const [, stage] = only(resources(t, "AWS::ApiGateway::Stage"));
    expect(JSON.stringify((stage.Properties.AccessLogSetting as { DestinationArn: unknown }).DestinationArn)).toContain(`"${accessLogsId}"`);
    t.hasResourceProperties("AWS::Logs::MetricFilter", { LogGroupName: { Ref: accessLogsId }, FilterPattern: "{ $.status = 429 }" });
    const topicId = logicalId(s.stack.monitoring.topic);
    const alarms = tier().api.alarms.map((a) => resources(t, "AWS::CloudWatch::Alarm")[logicalId(a)]!.Properties);
    expect(alarms).toHaveLength(4);
    for (const a of alarms) expect(a.AlarmActions).toEqual([{ Ref: topicId }]);
    const metricNames = alarms.map((a) =>
      a.MetricName ?? (a.Metrics as { MetricStat?: { Metric: { MetricName: string } } }[]).flatMap((m) => m.MetricStat?.Metric.MetricName ?? []).join("+"),
    );
    expect(metricNames).toEqual(["5XXError", "4XXError+Throttled", "Latency", "Throttled+Count"]);
  });
});

describe("ModelTier with a team's own image and overridden limits", () => {
  // The construct on its own, in a bare stack: quick to synthesize.
  const build = (context: Record<string, string>) => {
    const stack = new Stack(new App(), "Own", { env });
    new ModelTier(stack, "ModelTier", {
      config: modelTierFromContext((k) => context[k]),
      workBucket: new s3.Bucket(stack, "Work"),
      logRetentionDays: 30,
    });
    return Template.fromStack(stack);
  };

  it("runs the named ECR image, may pull it, and takes the plan and target from context", () => {
    const image = "210987654321.dkr.ecr.eu-west-1.amazonaws.com/acme/page-scorer:2.1";
    const own = build({
      modelImageUri: image,
      modelRequestsPerSecondPerVcpu: "5",
      modelInstanceType: "ml.c5.xlarge",
      modelMaxInstances: "10",
      modelBurstLimit: "7",
      modelQuotaPerDay: "100000",
    });
    own.hasResourceProperties("AWS::SageMaker::Model", { PrimaryContainer: { Image: image } });
    expect(JSON.stringify(own.toJSON())).not.toContain("container-assets");
    expect(JSON.stringify(own.findResources("AWS::IAM::Policy"))).toContain(":ecr:eu-west-1:210987654321:repository/acme/page-scorer");
    own.hasResourceProperties("AWS::SageMaker::EndpointConfig", { ProductionVariants: [{ InstanceType: "ml.c5.xlarge", InitialInstanceCount: 1 }] });
    // Another instance type is another endpoint (SageMaker cannot change an autoscaled variant's type in place).
    own.hasResourceProperties("AWS::SageMaker::Endpoint", { EndpointName: "Own-model-ml-c5-xlarge" });
    // 5/s per vCPU × 4 vCPU = 20/s per instance: rate 20 × 10 × 0.9, burst and quota as given.
    own.hasResourceProperties("AWS::ApiGateway::UsagePlan", { Throttle: { RateLimit: 180, BurstLimit: 7 }, Quota: { Limit: 100000, Period: "DAY" } });
    own.hasResourceProperties("AWS::ApplicationAutoScaling::ScalableTarget", { MinCapacity: 1, MaxCapacity: 10 });
    own.hasResourceProperties("AWS::ApplicationAutoScaling::ScalingPolicy", {
      TargetTrackingScalingPolicyConfiguration: { TargetValue: Math.floor(20 * 60 * 0.7) },
    });
  });
});

describe("a model API key encrypted with a customer managed key", () => {
  it("gives the reader GetSecretValue on it and kms:Decrypt on its key through Secrets Manager only", () => {
    const stack = new Stack(new App(), "Cmk", { env });
    const key = new kms.Key(stack, "Key");
    const secret = new secretsmanager.Secret(stack, "ApiKey", { encryptionKey: key });
    const role = new iam.Role(stack, "Reader", { assumedBy: new iam.ServicePrincipal("ecs-tasks.amazonaws.com") });
    grantSecretValue(secret, role);
    const statements = Object.values(Template.fromStack(stack).findResources("AWS::IAM::Policy")).flatMap(
      (p) => (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument.Statement,
    );
    const ids = (x: { node: { defaultChild?: unknown } }) => stack.getLogicalId(x.node.defaultChild as CfnElement);
    expect(statements).toEqual([
      { Effect: "Allow", Action: "secretsmanager:GetSecretValue", Resource: { Ref: ids(secret) } },
      {
        Effect: "Allow",
        Action: "kms:Decrypt",
        Resource: { "Fn::GetAtt": [ids(key), "Arn"] },
        Condition: { StringEquals: { "kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com" } },
      },
    ]);
  });
});
