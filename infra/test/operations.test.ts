import { readFileSync } from "node:fs";
import path from "node:path";
import { cx_api as cxapi } from "aws-cdk-lib";
import { METRICS_NAMESPACE, metricUnits } from "@docpipe/queue";
import type { Template } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serviceIds, type ServiceId } from "../lib/config.js";
import { HEALTHCHECK_SCRIPT } from "../lib/images.js";
import { estimatedMaxConnections } from "../lib/monitoring.js";
import { MAX_METRICS_PER_ALARM } from "../lib/queue-scaling.js";
import { deployables, WORKER_HEALTH_PORT } from "../lib/services.js";
import { resources, synth, type Synthesized } from "./synth.js";

const certificateArn = "arn:aws:acm:eu-west-1:123456789012:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
let s: Synthesized;
let t: Template;

beforeAll(() => {
  s = synth({ modelEndpointUrl: "https://model.example.com/invocations", certificateArn });
  if (!s.template) throw new Error(`synthesis failed: ${String(s.error)}`);
  t = s.template;
});
afterAll(() => s?.cleanup());

const logicalId = (c: { node: { defaultChild?: unknown } }): string => s.stack.getLogicalId(c.node.defaultChild as never);

describe("CDK feature flags", () => {
  it("cdk.json sets every flag this aws-cdk-lib recommends, to the recommended value", () => {
    const cdkJson = JSON.parse(readFileSync(path.resolve(import.meta.dirname, "../cdk.json"), "utf8")) as { context: Record<string, unknown> };
    expect(cdkJson.context).toEqual(cxapi.CURRENTLY_RECOMMENDED_FLAGS);
    // ...and the synthesized app sees them.
    expect(s.app.node.tryGetContext(cxapi.ECS_REMOVE_DEFAULT_DEPLOYMENT_ALARM)).toBe(true);
  });

  it("strips every rule from the VPC's default security group", () => {
    const restrict = Object.values(resources(t, "Custom::VpcRestrictDefaultSG"));
    expect(restrict).toHaveLength(1);
    expect(restrict[0]!.Properties.DefaultSecurityGroupId).toEqual({ "Fn::GetAtt": [logicalId(s.stack.network.vpc), "DefaultSecurityGroup"] });
  });

  it("keeps the ECS deployment controller explicit, so an existing deployment's services are updated, not replaced", () => {
    for (const [id, svc] of Object.entries(resources(t, "AWS::ECS::Service"))) {
      expect(svc.Properties.DeploymentController, id).toEqual({ Type: "ECS" });
    }
  });
});

describe("HTTPS", () => {
  const listeners = () => Object.values(resources(t, "AWS::ElasticLoadBalancingV2::Listener")).map((l) => l.Properties);

  it("serves the API on 443 with the certificate and a current TLS policy, and redirects port 80 to it", () => {
    const byPort = Object.fromEntries(listeners().map((l) => [l.Port as number, l]));
    expect(Object.keys(byPort).sort()).toEqual(["443", "80"]);
    expect(byPort[443]).toMatchObject({
      Protocol: "HTTPS",
      Certificates: [{ CertificateArn: certificateArn }],
      SslPolicy: "ELBSecurityPolicy-TLS13-1-2-2021-06",
      DefaultActions: [{ Type: "forward", TargetGroupArn: { Ref: logicalId(s.stack.services.targetGroup) } }],
    });
    expect(byPort[80]).toMatchObject({
      Protocol: "HTTP",
      DefaultActions: [{ Type: "redirect", RedirectConfig: { Protocol: "HTTPS", Port: "443", StatusCode: "HTTP_301" } }],
    });
  });

  it("admits callers from the VPC on 443 and 80 only, and gives the https:// URL", () => {
    const sg = resources(t, "AWS::EC2::SecurityGroup")[logicalId(s.stack.services.loadBalancer.connections.securityGroups[0]!)]!;
    const ingress = (sg.Properties.SecurityGroupIngress as { FromPort: number; ToPort: number; CidrIp: unknown }[]).map((r) => [r.FromPort, r.ToPort]);
    expect(ingress.sort()).toEqual([[443, 443], [80, 80]]);
    expect(JSON.stringify(t.toJSON().Outputs.IngestionUrl.Value)).toMatch(/^\{"Fn::Join":\["",\["https:\/\/"/);
  });
});

describe("sizes", () => {
  it("sizes the failsafe like the large splitter: it breaks down the documents the splitter gave up on", () => {
    const task = (id: "failsafe" | "splitter-large") => resources(t, "AWS::ECS::TaskDefinition")[logicalId(s.stack.services.byId[id].taskDefinition)]!.Properties;
    for (const p of ["Cpu", "Memory", "EphemeralStorage"]) expect(task("failsafe")[p], p).toEqual(task("splitter-large")[p]);
  });
});

describe("alarms", () => {
  const alarms = () => Object.values(resources(t, "AWS::CloudWatch::Alarm")).map((a) => a.Properties);

  it("keeps every alarm and every target-tracking policy within CloudWatch's limit of 10 metrics", () => {
    expect(MAX_METRICS_PER_ALARM).toBe(10);
    const fetched = (metrics: unknown) => ((metrics as { MetricStat?: unknown }[] | undefined) ?? []).filter((m) => m.MetricStat).length;
    let mathAlarms = 0;
    for (const a of alarms()) {
      if (a.Metrics) mathAlarms++;
      else expect(a.MetricName, String(a.AlarmDescription)).toBeDefined(); // a single-metric alarm
      expect(fetched(a.Metrics), String(a.AlarmDescription)).toBeLessThanOrEqual(MAX_METRICS_PER_ALARM);
    }
    // The failsafe's idle alarm reads the most: the five DLQs it drains.
    expect(mathAlarms).toBeGreaterThan(0);
    const policies = Object.values(resources(t, "AWS::ApplicationAutoScaling::ScalingPolicy")).map((p) => p.Properties);
    for (const p of policies.filter((p) => p.PolicyType === "TargetTrackingScaling")) {
      const spec = (p.TargetTrackingScalingPolicyConfiguration as { CustomizedMetricSpecification?: { Metrics?: unknown } }).CustomizedMetricSpecification;
      expect(fetched(spec?.Metrics), String(p.PolicyName)).toBeLessThanOrEqual(MAX_METRICS_PER_ALARM);
    }
  });

  it("watches Aurora's CPU, its capacity pinned at the maximum and its connections, to the alarm topic", () => {
    const cluster = { Name: "DBClusterIdentifier", Value: { Ref: logicalId(s.stack.database.cluster) } };
    const on = (metric: string) => alarms().filter((a) => a.MetricName === metric && a.Namespace === "AWS/RDS");
    const topic = [{ Ref: logicalId(s.stack.monitoring.topic) }];
    expect(on("CPUUtilization")).toEqual([expect.objectContaining({ Threshold: 80, EvaluationPeriods: 3, Dimensions: [cluster], AlarmActions: topic })]);
    expect(on("ServerlessDatabaseCapacity")).toEqual([
      expect.objectContaining({ Threshold: s.config.databaseMaxCapacity, ComparisonOperator: "GreaterThanOrEqualToThreshold", Dimensions: [cluster], AlarmActions: topic }),
    ]);
    expect(on("DatabaseConnections")).toEqual([
      expect.objectContaining({ Threshold: Math.floor(0.8 * estimatedMaxConnections(s.config.databaseMaxCapacity)), Dimensions: [cluster], AlarmActions: topic }),
    ]);
    // 16 ACUs: 32 GiB, about 3600 connections.
    expect(estimatedMaxConnections(16)).toBe(3604);
    expect(estimatedMaxConnections(256)).toBe(5000);
  });
});

const taskDef = (id: ServiceId) => resources(t, "AWS::ECS::TaskDefinition")[logicalId(s.stack.services.byId[id].taskDefinition)]!.Properties;
const container = (id: ServiceId) =>
  (taskDef(id).ContainerDefinitions as { HealthCheck?: Record<string, unknown>; Environment: { Name: string; Value: unknown }[] }[])[0]!;
const workerIds = deployables.filter((d) => d.consumes === "dead-letter" || d.consumes.length > 0).map((d) => d.id);

describe("health checks", () => {
  it("gives every service's container the image's health check, so ECS replaces an unhealthy task", () => {
    for (const id of serviceIds) {
      expect(container(id).HealthCheck, id).toEqual({ Command: ["CMD", HEALTHCHECK_SCRIPT], Interval: 30, Timeout: 5, Retries: 3, StartPeriod: 60 });
    }
  });

  it("has every queue worker serve its liveness on HEALTH_PORT, which the check asks", () => {
    const env = (id: ServiceId) => Object.fromEntries(container(id).Environment.map((e) => [e.Name, e.Value]));
    for (const id of workerIds) expect(env(id).HEALTH_PORT, id).toBe(String(WORKER_HEALTH_PORT));
    expect(env("ingestion").HEALTH_PORT).toBeUndefined(); // its check is GET /healthz on PORT
  });
});

describe("task scale-in protection", () => {
  const protectionStatements = (id: ServiceId) => {
    const roleId = logicalId(s.stack.services.byId[id].taskRole);
    return Object.values(resources(t, "AWS::IAM::Policy"))
      .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
      .flatMap((p) => (p.Properties.PolicyDocument as { Statement: { Action: unknown; Resource: unknown }[] }).Statement)
      .filter((st) => JSON.stringify(st.Action).includes("TaskProtection"));
  };

  it("lets the large splitter and the failsafe, and only them, protect their own cluster's tasks", () => {
    for (const id of serviceIds) {
      const sts = protectionStatements(id);
      if (id === "splitter-large" || id === "failsafe") {
        expect(sts, id).toHaveLength(1);
        expect(sts[0]!.Action).toEqual(["ecs:GetTaskProtection", "ecs:UpdateTaskProtection"]);
        expect(JSON.stringify(sts[0]!.Resource)).toContain(`:task/",{"Ref":"${logicalId(s.stack.services.cluster)}"},"/*"`);
      } else {
        expect(sts, id).toEqual([]);
      }
    }
  });

  it("keeps long jobs on demand (a Spot interruption ignores protection) with the 120 s stop timeout", () => {
    for (const id of ["splitter-large", "failsafe"] as const) {
      const svc = resources(t, "AWS::ECS::Service")[logicalId(s.stack.services.byId[id].service)]!.Properties;
      expect(svc.CapacityProviderStrategy, id).toEqual([{ CapacityProvider: "FARGATE", Weight: 1 }]);
      expect((taskDef(id).ContainerDefinitions as { StopTimeout: number }[])[0]!.StopTimeout).toBe(120);
    }
  });
});

describe("the services' own metrics (EMF)", () => {
  const dashboard = () => {
    const [d] = Object.values(resources(t, "AWS::CloudWatch::Dashboard"));
    const body = d!.Properties.DashboardBody as { "Fn::Join": [string, unknown[]] };
    return body["Fn::Join"][1].map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join("");
  };

  it("graphs every metric the services write, per stage, on the dashboard", () => {
    const body = dashboard();
    for (const name of Object.keys(metricUnits)) expect(body, name).toContain(`"${METRICS_NAMESPACE}","${name}","Service"`);
    for (const title of ["Pages finished per minute, per stage", "Time per message, p50 and p90 (ms)", "Model: latency p50 and p99 (ms); 429s and 5xx per minute"]) {
      expect(body).toContain(title);
    }
    expect(body).toContain('"Service","page-converter"');
  });

  it("alarms to the topic when the model's breaker stays open and when a batch stays stalled", () => {
    const on = (name: string) =>
      Object.values(resources(t, "AWS::CloudWatch::Alarm"))
        .map((a) => a.Properties)
        .filter((a) => a.Namespace === METRICS_NAMESPACE && a.MetricName === name);
    const topic = [{ Ref: logicalId(s.stack.monitoring.topic) }];
    expect(on("BreakerOpen")).toEqual([
      expect.objectContaining({ Dimensions: [{ Name: "Service", Value: "inference-client" }], Threshold: 1, EvaluationPeriods: 5, AlarmActions: topic }),
    ]);
    expect(on("StalledBatches")).toEqual([
      expect.objectContaining({ Dimensions: [{ Name: "Service", Value: "ingestion" }], Threshold: 1, AlarmActions: topic }),
    ]);
  });
});

describe("autoscaling's role", () => {
  it("scales every service with Application Auto Scaling's service-linked role for ECS, and creates no role for it", () => {
    const targets = Object.values(resources(t, "AWS::ApplicationAutoScaling::ScalableTarget")).map((r) => r.Properties);
    expect(targets.filter((p) => p.ServiceNamespace === "ecs")).toHaveLength(targets.length);
    // The six queue workers and the API.
    expect(targets).toHaveLength(7);
    for (const p of targets) {
      expect(p.RoleARN, JSON.stringify(p.ResourceId)).toEqual(
        "arn:aws:iam::123456789012:role/aws-service-role/ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService",
      );
    }
    const scalingRoles = Object.values(resources(t, "AWS::IAM::Role")).filter((r) => JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes("application-autoscaling"));
    expect(scalingRoles).toEqual([]);
  });
});

describe("the admin task", () => {
  const admin = () => resources(t, "AWS::ECS::TaskDefinition")[logicalId(s.stack.services.admin.taskDefinition)]!.Properties;
  const output = (name: string) => {
    const v = t.toJSON().Outputs[name].Value as { "Fn::Join": [string, unknown[]] };
    return v["Fn::Join"][1].map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join("");
  };

  it("runs the CLI's image against Aurora with the services' credentials, and is no service", () => {
    const [c] = admin().ContainerDefinitions as { Name: string; Command: string[]; Environment: { Name: string }[]; Secrets: { Name: string }[]; HealthCheck?: unknown }[];
    expect(c!.Name).toBe("admin");
    expect(c!.Command).toEqual(["sleep", "3600"]);
    expect(c!.Environment.map((e) => e.Name)).toEqual(expect.arrayContaining(["DB_HOST", "DB_PORT", "DB_NAME", "QUEUE_PREFIX", "AWS_REGION"]));
    expect(c!.Secrets.map((e) => e.Name).sort()).toEqual(["DB_PASSWORD", "DB_USERNAME"]);
    const services = Object.values(resources(t, "AWS::ECS::Service")).map((svc) => JSON.stringify(svc.Properties.TaskDefinition));
    expect(services).not.toContain(JSON.stringify({ Ref: logicalId(s.stack.services.admin.taskDefinition) }));
    const assets = JSON.parse(readFileSync(path.join(s.app.outdir, s.stack.templateFile.replace(".template.json", ".assets.json")), "utf8")) as {
      dockerImages: Record<string, { source: { dockerBuildArgs?: Record<string, string> } }>;
    };
    expect(Object.values(assets.dockerImages).map((i) => i.source.dockerBuildArgs?.SERVICE)).toContain("cli");
  });

  it("can be reached with ECS Exec, whose sessions are not logged (a new API key is printed there)", () => {
    const roleId = s.stack.getLogicalId(s.stack.services.admin.taskDefinition.taskRole.node.defaultChild as never);
    const actions = Object.values(resources(t, "AWS::IAM::Policy"))
      .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
      .flatMap((p) => (p.Properties.PolicyDocument as { Statement: { Action: unknown }[] }).Statement.flatMap((st) => [st.Action].flat()));
    expect(actions).toEqual(expect.arrayContaining(["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"]));
    // redrive: from the dead-letter queues back
    expect(actions).toEqual(expect.arrayContaining(["sqs:ReceiveMessage", "sqs:SendMessage"]));
    t.hasResourceProperties("AWS::ECS::Cluster", { Configuration: { ExecuteCommandConfiguration: { Logging: "NONE" } } });
  });

  it("gives the exact commands as outputs: start it, run the first key in it, tunnel to the database through it", () => {
    const run = output("AdminRunTask");
    expect(run).toContain(`aws ecs run-task --cluster {"Ref":"${logicalId(s.stack.services.cluster)}"} --task-definition `);
    expect(run).toContain("--launch-type FARGATE --enable-execute-command --network-configuration 'awsvpcConfiguration={subnets=[");
    expect(run).toContain(`securityGroups=[{"Fn::GetAtt":["${logicalId(s.stack.network.servicesSecurityGroup)}","GroupId"]}],assignPublicIp=DISABLED}'`);
    const subnets = s.stack.network.vpc.privateSubnets.map((sn) => logicalId(sn as never));
    for (const id of subnets) expect(run).toContain(`{"Ref":"${id}"}`);
    expect(output("AdminExecCommand")).toMatch(/^aws ecs execute-command --cluster .* --container admin --interactive --task <task-arn> --command "\/usr\/local\/bin\/docpipe-entrypoint node \/app\/dist\/main.js keys create --name first --owner ops --plan standard --bucket /);
    expect(output("DatabaseTunnelCommand")).toContain("--document-name AWS-StartPortForwardingSessionToRemoteHost");
    expect(output("DatabaseTunnelCommand")).toContain(`"portNumber":["5432"],"localPortNumber":["15432"]`);
  });
});

describe("Node 24", () => {
  it("runs every Node.js Lambda of the stack (the migration runner, CDK's custom resources) on nodejs24.x", () => {
    const runtimes = Object.values(resources(t, "AWS::Lambda::Function")).map((f) => f.Properties.Runtime as string);
    const node = runtimes.filter((r) => r.startsWith("nodejs"));
    expect(node.length).toBeGreaterThan(0);
    expect(new Set(node)).toEqual(new Set(["nodejs24.x"]));
  });
});
