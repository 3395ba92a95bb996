import { readFileSync } from "node:fs";
import path from "node:path";
import type { CfnElement } from "aws-cdk-lib";
import { Match, type Template } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dlqName, queues } from "@docpipe/queue";
import { serviceIds, type ServiceId } from "../lib/config.js";
import { targetBacklogPerTask } from "../lib/queue-scaling.js";
import { resources, synth, type Synthesized } from "./synth.js";

const prefix = "docpipe-";
const mainNames = Object.values(queues).map((q) => `${prefix}${q.name}`);
const dlqNames = Object.values(queues).map((q) => `${prefix}${dlqName(q)}`);
const workers = serviceIds.filter((s) => s !== "ingestion");

let s: Synthesized;
let t: Template;
const modelKeyKms = "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";

beforeAll(() => {
  s = synth({
    modelEndpointUrl: "https://model.example.com/invocations",
    modelApiKeySecretName: "docpipe/model-api-key",
    modelApiKeySecretKmsKeyArn: modelKeyKms,
    alarmEmail: "ops@example.com",
    certificateArn: "arn:aws:acm:eu-west-1:123456789012:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
  });
  if (!s.template) throw new Error(`synthesis failed: ${String(s.error)}`);
  t = s.template;
});
afterAll(() => s?.cleanup());

const logicalId = (c: { node: { defaultChild?: unknown } }): string =>
  s.stack.getLogicalId(c.node.defaultChild as CfnElement);

/** QueueName by logical id, from the template. */
const queueNameById = (): Record<string, string> =>
  Object.fromEntries(
    Object.entries(resources(t, "AWS::SQS::Queue")).map(([id, r]) => [id, r.Properties.QueueName as string]),
  );

const getAtt = (v: unknown): string | undefined =>
  (v as { "Fn::GetAtt"?: [string, string] })?.["Fn::GetAtt"]?.[0];

describe("cdk-nag", () => {
  it("finds nothing unacknowledged in the AwsSolutions pack, and CloudFormation validation finds nothing", () => {
    expect(s.error).toBeUndefined();
    const violations = s.report.pluginReports.flatMap((r) => r.violations.map((v) => `${r.pluginName}: ${v.ruleName}`));
    expect(violations).toEqual([]);
  });

  it("has a reason on every acknowledgment", () => {
    const acks = s.app.node
      .findAll()
      .flatMap((c) => c.node.metadata.filter((m) => m.type === "aws:cdk:acknowledged-rules"))
      .flatMap((m) => Object.entries(m.data as Record<string, string>));
    const ours = acks.filter(([id]) => id.includes("AwsSolutions"));
    expect(ours.length).toBeGreaterThan(10);
    for (const [id, reason] of acks) {
      expect(typeof reason, id).toBe("string");
      expect(reason.trim().length, `acknowledgment ${id} needs a reason`).toBeGreaterThanOrEqual(20);
    }
  });
});

describe("queues", () => {
  it("creates every catalog queue with its DLQ, redrive count and visibility timeout from the catalog", () => {
    const names = queueNameById();
    const byName = Object.fromEntries(Object.entries(names).map(([id, n]) => [n, id]));
    expect(Object.values(names).sort()).toEqual([...mainNames, ...dlqNames].sort());
    const all = resources(t, "AWS::SQS::Queue");
    for (const spec of Object.values(queues)) {
      const q = all[byName[`${prefix}${spec.name}`]!]!.Properties;
      expect(q.VisibilityTimeout).toBe(spec.visibilityTimeoutSeconds);
      const redrive = q.RedrivePolicy as { deadLetterTargetArn: unknown; maxReceiveCount: number };
      expect(redrive.maxReceiveCount).toBe(spec.maxReceiveCount);
      expect(names[getAtt(redrive.deadLetterTargetArn)!]).toBe(`${prefix}${dlqName(spec)}`);
    }
  });

  it("encrypts every queue and denies requests without TLS", () => {
    for (const [id, q] of Object.entries(resources(t, "AWS::SQS::Queue"))) {
      expect(q.Properties.SqsManagedSseEnabled, id).toBe(true);
    }
    const policies = Object.values(resources(t, "AWS::SQS::QueuePolicy"));
    const tlsOnly = new Set(
      policies
        .filter((p) =>
          (p.Properties.PolicyDocument as { Statement: { Effect: string; Condition?: unknown }[] }).Statement.some(
            (st) =>
              st.Effect === "Deny" &&
              JSON.stringify(st.Condition) === JSON.stringify({ Bool: { "aws:SecureTransport": "false" } }),
          ),
        )
        .flatMap((p) => (p.Properties.Queues as { Ref: string }[]).map((r) => r.Ref)),
    );
    expect([...tlsOnly].sort()).toEqual(Object.keys(resources(t, "AWS::SQS::Queue")).sort());
  });

  it("sends object-created events for PNGs under batches/ to the converted-image queue, which admits only the work bucket", () => {
    const names = queueNameById();
    const notif = Object.values(resources(t, "Custom::S3BucketNotifications"));
    expect(notif).toHaveLength(1);
    const props = notif[0]!.Properties as {
      BucketName: { Ref: string };
      NotificationConfiguration: { QueueConfigurations: { Events: string[]; Filter: unknown; QueueArn: unknown }[] };
    };
    expect(props.BucketName.Ref).toBe(logicalId(s.stack.storage.workBucket));
    const [cfg, ...rest] = props.NotificationConfiguration.QueueConfigurations;
    expect(rest).toHaveLength(0);
    expect(cfg!.Events).toEqual(["s3:ObjectCreated:*"]);
    expect(names[getAtt(cfg!.QueueArn)!]).toBe(`${prefix}converted-image`);
    const rules = (cfg!.Filter as { Key: { FilterRules: { Name: string; Value: string }[] } }).Key.FilterRules;
    expect(rules).toEqual(
      expect.arrayContaining([
        { Name: "prefix", Value: "batches/" },
        { Name: "suffix", Value: ".png" },
      ]),
    );
    t.hasResourceProperties("AWS::SQS::QueuePolicy", {
      Queues: [{ Ref: logicalId(s.stack.queues.byKey.convertedImage.queue) }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Allow",
            Principal: { Service: "s3.amazonaws.com" },
            Action: Match.arrayWith(["sqs:SendMessage"]),
            Condition: { ArnLike: { "aws:SourceArn": { "Fn::GetAtt": [logicalId(s.stack.storage.workBucket), "Arn"] } } },
          }),
        ]),
      },
    });
  });
});

describe("alarms", () => {
  const alarmsOn = (metricName: string, queueId: string) =>
    Object.values(resources(t, "AWS::CloudWatch::Alarm")).filter(
      (a) =>
        a.Properties.MetricName === metricName &&
        getAtt((a.Properties.Dimensions as { Value: unknown }[] | undefined)?.[0]?.Value) === queueId,
    );
  const topic = () => ({ Ref: logicalId(s.stack.monitoring.topic) });

  it("raises an alarm to the SNS topic as soon as any DLQ holds a message", () => {
    for (const q of s.stack.queues.all) {
      const alarms = alarmsOn("ApproximateNumberOfMessagesVisible", logicalId(q.dlq));
      expect(alarms, q.key).toHaveLength(1);
      expect(alarms[0]!.Properties).toMatchObject({
        Threshold: 0,
        ComparisonOperator: "GreaterThanThreshold",
        EvaluationPeriods: 1,
        AlarmActions: [topic()],
      });
    }
  });

  it("raises an alarm per queue when its oldest message is older than the limit", () => {
    for (const q of s.stack.queues.all) {
      const alarms = alarmsOn("ApproximateAgeOfOldestMessage", logicalId(q.queue));
      expect(alarms, q.key).toHaveLength(1);
      expect(alarms[0]!.Properties).toMatchObject({
        Threshold: s.config.maxMessageAgeSeconds,
        ComparisonOperator: "GreaterThanThreshold",
        AlarmActions: [topic()],
      });
    }
  });

  it("counts error log lines per service and alarms on them; mails the topic's subscriber", () => {
    for (const id of serviceIds) {
      t.hasResourceProperties("AWS::Logs::MetricFilter", {
        LogGroupName: { Ref: logicalId(s.stack.services.byId[id].logGroup) },
        FilterPattern: "{ $.level >= 50 }",
        MetricTransformations: [Match.objectLike({ MetricNamespace: "Docpipe/Errors", MetricName: id })],
      });
      t.hasResourceProperties("AWS::CloudWatch::Alarm", {
        Namespace: "Docpipe/Errors",
        MetricName: id,
        AlarmActions: [topic()],
      });
    }
    t.hasResourceProperties("AWS::SNS::Subscription", { Protocol: "email", Endpoint: "ops@example.com" });
    t.hasResourceProperties("AWS::SNS::Topic", { KmsMasterKeyId: Match.anyValue() });
  });

  it("has a dashboard with queue depth and age, running tasks, pages per minute and errors per stage", () => {
    const dashboards = Object.values(resources(t, "AWS::CloudWatch::Dashboard"));
    expect(dashboards).toHaveLength(1);
    const body = JSON.stringify(dashboards[0]!.Properties.DashboardBody);
    for (const title of [
      "Queue depth (visible)",
      "Age of oldest message (s)",
      "Running tasks",
      "Pages per minute",
      "Errors per stage",
    ]) {
      expect(body).toContain(title);
    }
    expect(body).toContain("RunningTaskCount");
    expect(body).toContain("NumberOfMessagesDeleted");
  });
});

describe("autoscaling", () => {
  const targetOf = (id: ServiceId) => {
    const svcId = logicalId(s.stack.services.byId[id].service);
    const found = Object.entries(resources(t, "AWS::ApplicationAutoScaling::ScalableTarget")).filter(([, r]) =>
      JSON.stringify(r.Properties.ResourceId).includes(`"${svcId}"`),
    );
    expect(found, id).toHaveLength(1);
    return found[0]!;
  };
  const policiesOf = (targetId: string) =>
    Object.values(resources(t, "AWS::ApplicationAutoScaling::ScalingPolicy")).filter(
      (p) => (p.Properties.ScalingTargetId as { Ref?: string }).Ref === targetId,
    );
  const alarmFor = (policy: { Properties: Record<string, unknown> }) => {
    const policyId = Object.entries(resources(t, "AWS::ApplicationAutoScaling::ScalingPolicy")).find(
      ([, p]) => p === policy,
    )![0];
    const alarms = Object.values(resources(t, "AWS::CloudWatch::Alarm")).filter((a) =>
      JSON.stringify(a.Properties.AlarmActions).includes(`"${policyId}"`),
    );
    expect(alarms).toHaveLength(1);
    return alarms[0]!.Properties as { Metrics: { Id: string; Expression?: string; MetricStat?: unknown }[] } & Record<string, unknown>;
  };
  const consumedQueueIds = (id: ServiceId): string[] =>
    id === "failsafe"
      ? s.stack.queues.all.filter((q) => q.key !== "parked").map((q) => logicalId(q.dlq))
      : s.stack.queues.all
          .filter((q) =>
            ({
              "chunking-orchestrator": ["ingest"],
              "splitter-large": ["large"],
              "splitter-small": ["small"],
              "page-converter": ["singlePage"],
              "inference-client": ["convertedImage"],
            })[id as string]!.includes(q.key),
          )
          .map((q) => logicalId(q.queue));

  it.each(workers)("%s tracks visible messages per running task with metric math", (id) => {
    const [targetId] = targetOf(id);
    const tracking = policiesOf(targetId).filter((p) => p.Properties.PolicyType === "TargetTrackingScaling");
    expect(tracking).toHaveLength(1);
    const cfg = tracking[0]!.Properties.TargetTrackingScalingPolicyConfiguration as {
      TargetValue: number;
      DisableScaleIn: boolean;
      CustomizedMetricSpecification: {
        Metrics: { Id: string; Expression?: string; ReturnData: boolean; MetricStat?: { Metric: { MetricName: string; Namespace: string; Dimensions: { Value: unknown }[] } } }[];
      };
    };
    const size = s.config.sizes[id];
    expect(cfg.TargetValue).toBe(
      targetBacklogPerTask({
        concurrency: size.concurrency,
        secondsPerMessage: size.secondsPerMessage,
        acceptableLatencySeconds: s.config.acceptableLatencySeconds,
      }),
    );
    // Scale-in works for every service: long jobs (large splits, failsafe break-downs) hold task
    // scale-in protection while they run, so scale-in stops only idle tasks.
    expect(cfg.DisableScaleIn).toBe(false);
    const metrics = cfg.CustomizedMetricSpecification.Metrics;
    const returned = metrics.filter((m) => m.ReturnData);
    expect(returned).toHaveLength(1);
    const visible = metrics.filter((m) => m.MetricStat?.Metric.MetricName === "ApproximateNumberOfMessagesVisible");
    expect(visible.map((m) => getAtt(m.MetricStat!.Metric.Dimensions[0]!.Value)).sort()).toEqual(consumedQueueIds(id).sort());
    const running = metrics.find((m) => m.MetricStat?.Metric.MetricName === "RunningTaskCount");
    expect(running?.MetricStat?.Metric.Namespace).toBe("ECS/ContainerInsights");
    // visible (summed over the consumed queues) divided by running tasks, never by zero
    const expr = returned[0]!.Expression!;
    for (const v of visible) expect(expr).toContain(v.Id);
    expect(expr).toMatch(new RegExp(`\\) / IF\\(FILL\\(${running!.Id}, 0\\) >= 1, FILL\\(${running!.Id}, 0\\), 1\\)$`));
  });

  it.each(workers)("%s scales to zero when idle and wakes on the first message", (id) => {
    const [targetId, target] = targetOf(id);
    expect(target.Properties.MinCapacity).toBe(0);
    expect(target.Properties.MaxCapacity).toBe(s.config.sizes[id].maxTasks);
    const steps = policiesOf(targetId).filter((p) => p.Properties.PolicyType === "StepScaling");
    const cfgOf = (p: (typeof steps)[number]) =>
      p.Properties.StepScalingPolicyConfiguration as { AdjustmentType: string; StepAdjustments: Record<string, number>[] };

    const toZero = steps.find((p) => cfgOf(p).AdjustmentType === "ExactCapacity")!;
    expect(cfgOf(toZero).StepAdjustments).toEqual([{ MetricIntervalUpperBound: 0, ScalingAdjustment: 0 }]);
    const idle = alarmFor(toZero);
    expect(idle).toMatchObject({ Threshold: 0, ComparisonOperator: "LessThanOrEqualToThreshold", TreatMissingData: "breaching" });
    const idleNames = idle.Metrics.filter((m) => m.MetricStat).map(
      (m) => (m.MetricStat as { Metric: { MetricName: string } }).Metric.MetricName,
    );
    // Nothing visible and nothing in flight: never scale to zero under a running job. Services whose
    // busy tasks hold scale-in protection need only nothing visible.
    const protectedJobs = id === "splitter-large" || id === "failsafe";
    expect(new Set(idleNames)).toEqual(
      new Set(protectedJobs ? ["ApproximateNumberOfMessagesVisible"] : ["ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible"]),
    );

    const wake = steps.find((p) => cfgOf(p).AdjustmentType === "ChangeInCapacity")!;
    expect(cfgOf(wake).StepAdjustments).toEqual([{ MetricIntervalLowerBound: 0, ScalingAdjustment: 1 }]);
    const wakeAlarm = alarmFor(wake);
    expect(wakeAlarm).toMatchObject({ Threshold: 1, ComparisonOperator: "GreaterThanOrEqualToThreshold" });
    const expr = wakeAlarm.Metrics.find((m) => m.Expression)!.Expression!;
    expect(expr).toMatch(/> 0 AND FILL\(running, 0\) < 1/);
  });

  it("keeps the ingestion API at one task or more, scaling on CPU", () => {
    const [targetId, target] = targetOf("ingestion");
    expect(target.Properties.MinCapacity).toBe(1);
    const policies = policiesOf(targetId);
    expect(policies).toHaveLength(1);
    expect(policies[0]!.Properties.TargetTrackingScalingPolicyConfiguration).toMatchObject({
      PredefinedMetricSpecification: { PredefinedMetricType: "ECSServiceAverageCPUUtilization" },
    });
  });
});

describe("services", () => {
  it("runs the migration task before any service starts", () => {
    const migration = Object.keys(resources(t, "Custom::DocpipeMigration"));
    expect(migration).toHaveLength(1);
    t.hasResourceProperties("Custom::DocpipeMigration", {
      TaskDefinition: { Ref: logicalId(s.stack.services.migration.taskDefinition) },
    });
    for (const [id, svc] of Object.entries(resources(t, "AWS::ECS::Service"))) {
      expect(svc.DependsOn ?? [], id).toContain(migration[0]);
    }
    // ...and only once the database has a writer to talk to.
    const [writer] = Object.keys(resources(t, "AWS::RDS::DBInstance"));
    const run = resources(t, "Custom::DocpipeMigration")[migration[0]!]!;
    expect(run.DependsOn).toContain(writer);
  });

  it("sizes tasks per role and gives workers the Fargate maximum stop timeout", () => {
    for (const id of serviceIds) {
      const td = resources(t, "AWS::ECS::TaskDefinition")[logicalId(s.stack.services.byId[id].taskDefinition)]!;
      const size = s.config.sizes[id];
      expect(td.Properties).toMatchObject({ Cpu: String(size.cpu), Memory: String(size.memoryMiB) });
      const [c] = td.Properties.ContainerDefinitions as { StopTimeout: number; Environment: { Name: string; Value: unknown }[] }[];
      expect(c!.StopTimeout).toBe(120);
    }
    const large = resources(t, "AWS::ECS::TaskDefinition")[logicalId(s.stack.services.byId["splitter-large"].taskDefinition)]!;
    expect(large.Properties.EphemeralStorage).toEqual({ SizeInGiB: 100 });
    const env = (id: ServiceId) =>
      Object.fromEntries(
        (
          (resources(t, "AWS::ECS::TaskDefinition")[logicalId(s.stack.services.byId[id].taskDefinition)]!.Properties
            .ContainerDefinitions as { Environment: { Name: string; Value: unknown }[] }[])[0]!.Environment
        ).map((e) => [e.Name, e.Value]),
      );
    expect(env("splitter-large").ROLE).toBe("large");
    expect(env("splitter-small").ROLE).toBe("small");
    expect(env("inference-client").MODEL_URL).toBe("https://model.example.com/invocations");
    expect(env("inference-client").MODEL_API_KEY_SECRET).toBe("docpipe/model-api-key");
    expect(env("page-converter").RENDER_THREADS).toBe(String(s.config.sizes["page-converter"].concurrency));
    expect(env("ingestion").QUEUE_PREFIX).toBe(prefix);
  });

  it("runs short idempotent jobs on Spot beyond an on-demand base, and long jobs and the API on demand", () => {
    const strategy = (id: ServiceId) =>
      resources(t, "AWS::ECS::Service")[logicalId(s.stack.services.byId[id].service)]!.Properties.CapacityProviderStrategy;
    for (const id of ["chunking-orchestrator", "splitter-small", "page-converter", "inference-client"] as const) {
      expect(strategy(id), id).toEqual([
        { CapacityProvider: "FARGATE", Base: s.config.onDemandBaseTasks, Weight: 0 },
        { CapacityProvider: "FARGATE_SPOT", Weight: 1 },
      ]);
    }
    for (const id of ["ingestion", "splitter-large", "failsafe"] as const) expect(strategy(id), id).toEqual([{ CapacityProvider: "FARGATE", Weight: 1 }]);
  });

  it("builds every image from docker/Dockerfile for linux/amd64, one per package plus the migrate, admin and reconciler tasks", () => {
    const assets = JSON.parse(
      readFileSync(path.join(s.app.outdir, s.stack.templateFile.replace(".template.json", ".assets.json")), "utf8"),
    ) as { dockerImages: Record<string, { source: { dockerFile: string; dockerBuildArgs?: Record<string, string>; dockerBuildTarget: string; platform: string } }> };
    const images = Object.values(assets.dockerImages).map((i) => i.source);
    for (const i of images) expect(i).toMatchObject({ dockerFile: "docker/Dockerfile", platform: "linux/amd64" });
    expect(images.map((i) => i.dockerBuildArgs?.SERVICE ?? `target:${i.dockerBuildTarget}`).sort()).toEqual(
      ["chunking-orchestrator", "cli", "failsafe", "inference-client", "ingestion", "migrate", "page-converter", "reconciler", "splitter"].sort(),
    );
  });

  it("puts the ingestion service behind an internal load balancer that checks /healthz", () => {
    t.hasResourceProperties("AWS::ElasticLoadBalancingV2::LoadBalancer", { Scheme: "internal" });
    t.hasResourceProperties("AWS::ElasticLoadBalancingV2::TargetGroup", {
      HealthCheckPath: "/healthz",
      Port: 8080,
      TargetType: "ip",
    });
    const ingestion = resources(t, "AWS::ECS::Service")[logicalId(s.stack.services.byId.ingestion.service)]!;
    expect(ingestion.Properties.LoadBalancers).toEqual([
      expect.objectContaining({ ContainerName: "app", ContainerPort: 8080 }),
    ]);
  });
});
