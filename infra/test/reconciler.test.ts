// The reconciler on AWS (lib/reconciler-task.ts): a scheduled Fargate task, one pass every few
// minutes, that may read queue counts and send to the queues whose messages continue a unit,
// and nothing else; alarms when its passes stop and when it had to re-send lost messages.
import type { CfnElement } from "aws-cdk-lib";
import type { Template } from "aws-cdk-lib/assertions";
import { METRICS_NAMESPACE } from "@docpipe/queue";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RECONCILE_EVERY_MINUTES } from "../lib/reconciler-task.js";
import { resources, synth, type Synthesized } from "./synth.js";

let s: Synthesized;
let t: Template;

beforeAll(() => {
  s = synth({ modelEndpointUrl: "https://model.example.com/invocations", alarmEmail: "ops@example.com", allowHttp: "true" });
  if (!s.template) throw new Error(`synthesis failed: ${String(s.error)}`);
  t = s.template;
});
afterAll(() => s?.cleanup());

const logicalId = (c: { node: { defaultChild?: unknown } }): string => s.stack.getLogicalId(c.node.defaultChild as CfnElement);
const getAtt = (v: unknown): string | undefined => (v as { "Fn::GetAtt"?: [string, string] })?.["Fn::GetAtt"]?.[0];

describe("the reconciler", () => {
  it("runs as a Fargate task every few minutes, one pass each, after the migration, with the services' settings and database credentials", () => {
    const taskDefinition = logicalId(s.stack.reconciler.taskDefinition);
    const [rule] = Object.values(resources(t, "AWS::Events::Rule"));
    expect(rule!.Properties).toMatchObject({
      ScheduleExpression: `rate(${RECONCILE_EVERY_MINUTES} minutes)`,
      State: "ENABLED",
      Targets: [
        expect.objectContaining({
          Arn: { "Fn::GetAtt": [logicalId(s.stack.services.cluster), "Arn"] },
          EcsParameters: expect.objectContaining({ TaskCount: 1, LaunchType: "FARGATE", TaskDefinitionArn: { Ref: taskDefinition } }),
        }),
      ],
    });
    expect(rule!.DependsOn).toEqual(expect.arrayContaining([logicalId(s.stack.services.migration.resource as never)]));
    const task = resources(t, "AWS::ECS::TaskDefinition")[taskDefinition]!.Properties;
    expect(task).toMatchObject({ Cpu: "256", Memory: "512" });
    const [container] = task.ContainerDefinitions as { Name: string; Environment: { Name: string; Value: unknown }[]; Secrets: { Name: string }[] }[];
    const env = Object.fromEntries(container!.Environment.map((e) => [e.Name, e.Value]));
    expect(env).toMatchObject({ SERVICE_NAME: "reconciler", RECONCILE_INTERVAL_SECONDS: "0", QUEUE_PREFIX: s.config.queuePrefix });
    expect(Object.keys(env)).toEqual(expect.arrayContaining(["DB_HOST", "DB_PORT", "DB_NAME", "WORK_BUCKET"]));
    expect(container!.Secrets.map((x) => x.Name).sort()).toEqual(["DB_PASSWORD", "DB_USERNAME"]);
  });

  it("may read queue counts and send to the pipeline's queues, and nothing else: no receive, no purge, no S3", () => {
    const roleId = getAtt(resources(t, "AWS::ECS::TaskDefinition")[logicalId(s.stack.reconciler.taskDefinition)]!.Properties.TaskRoleArn);
    const statements = Object.values(resources(t, "AWS::IAM::Policy"))
      .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
      .flatMap((p) => (p.Properties.PolicyDocument as { Statement: { Action: string | string[]; Resource: unknown }[] }).Statement);
    const names = Object.fromEntries(Object.entries(resources(t, "AWS::SQS::Queue")).map(([id, r]) => [id, r.Properties.QueueName as string]));
    // grantSendMessages adds GetQueueAttributes too: the resources, once each.
    const on = (action: string) => [
      ...new Set(
        statements.filter((st) => [st.Action].flat().includes(action)).flatMap((st) => [st.Resource].flat().map((r) => names[getAtt(r) ?? ""] ?? JSON.stringify(r))),
      ),
    ].sort();
    const pipeline = ["ingest", "large", "small", "single-page", "converted-image"].map((n) => `${s.config.queuePrefix}${n}`);
    expect(on("sqs:SendMessage")).toEqual([...pipeline].sort());
    expect(on("sqs:GetQueueAttributes")).toEqual([...pipeline, ...pipeline.map((q) => `${q}-dlq`)].sort());
    const actions = statements.flatMap((st) => [st.Action].flat());
    expect(actions.filter((a) => !a.startsWith("sqs:") || ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:PurgeQueue"].includes(a))).toEqual([]);
  });

  it("alarms to the topic when its passes stop ending, and when it re-sent lost messages", () => {
    const alarms = Object.values(resources(t, "AWS::CloudWatch::Alarm"))
      .map((a) => a.Properties)
      .filter((a) => a.Namespace === METRICS_NAMESPACE && (a.Dimensions as { Value: string }[])[0]!.Value === "reconciler");
    const topic = [{ Ref: logicalId(s.stack.monitoring.topic) }];
    expect(alarms).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          MetricName: "ReconcilePasses",
          ComparisonOperator: "LessThanThreshold",
          Threshold: 1,
          Period: 3 * RECONCILE_EVERY_MINUTES * 60,
          TreatMissingData: "breaching",
          AlarmActions: topic,
        }),
        expect.objectContaining({ MetricName: "UnitsReconciled", ComparisonOperator: "GreaterThanOrEqualToThreshold", Threshold: 1, AlarmActions: topic }),
      ]),
    );
    expect(alarms).toHaveLength(2);
  });
});
