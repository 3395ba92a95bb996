import { App, aws_ec2 as ec2, Stack, Validations } from "aws-cdk-lib";
import type { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServiceId } from "../lib/config.js";
import { deployables } from "../lib/services.js";
import { resources, synth, type Synthesized } from "./synth.js";

describe("an existing staging bucket and a SageMaker endpoint", () => {
  let s: Synthesized;
  let t: Template;
  beforeAll(() => {
    s = synth({
      stagingBucketName: "acme-scans",
      stagingBucketKmsKeyArn: "arn:aws:kms:eu-west-1:123456789012:key/1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809",
      sagemakerEndpointName: "Page-Scorer",
      modelRoleArn: "arn:aws:iam::123456789012:role/page-scorer",
      deletionProtection: "false",
      allowHttp: "true",
    });
    if (!s.template) throw new Error(`synthesis failed: ${String(s.error)}`);
    t = s.template;
  });
  afterAll(() => s?.cleanup());

  it("passes cdk-nag too", () => {
    expect(s.error).toBeUndefined();
    expect(s.report.pluginReports.flatMap((r) => r.violations)).toEqual([]);
  });

  it("serves plain HTTP on port 80 only when asked to (allowHttp), with no HTTPS listener or redirect", () => {
    const listeners = Object.values(resources(t, "AWS::ElasticLoadBalancingV2::Listener")).map((l) => l.Properties);
    expect(listeners).toHaveLength(1);
    expect(listeners[0]).toMatchObject({ Port: 80, Protocol: "HTTP", DefaultActions: [{ Type: "forward" }] });
    expect(JSON.stringify(t.toJSON().Outputs.IngestionUrl.Value)).toContain('"http://"');
  });

  it("creates no staging bucket and reads the named one", () => {
    expect(Object.keys(resources(t, "AWS::S3::Bucket"))).toHaveLength(2); // logs and work only
    const policies = JSON.stringify(resources(t, "AWS::IAM::Policy"));
    expect(policies).toContain(":s3:::acme-scans/*");
    const env = JSON.stringify(resources(t, "AWS::ECS::TaskDefinition"));
    expect(env).toContain('{"Name":"STAGING_BUCKET","Value":"acme-scans"}');
  });

  it("lets exactly the stages that read sources decrypt them with the bucket's KMS key, through S3 only", () => {
    const decrypting = Object.values(resources(t, "AWS::IAM::Policy")).flatMap((p) =>
      (p.Properties.PolicyDocument as { Statement: { Action: unknown; Resource: unknown; Condition?: unknown }[] }).Statement.filter((st) =>
        [st.Action].flat().includes("kms:Decrypt"),
      ).map((st) => ({ roles: p.Properties.Roles as { Ref: string }[], st })),
    );
    const roleOf = (id: ServiceId) => s.stack.getLogicalId(s.stack.services.byId[id].taskRole.node.defaultChild as never);
    const readers = deployables.filter((d) => d.readsStaging).map((d) => roleOf(d.id)).sort();
    expect(decrypting.flatMap((d) => d.roles.map((r) => r.Ref)).sort()).toEqual(readers);
    for (const { st } of decrypting) {
      expect(st.Resource).toBe("arn:aws:kms:eu-west-1:123456789012:key/1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809");
      expect(st.Condition).toEqual({ StringEquals: { "kms:ViaService": "s3.eu-west-1.amazonaws.com" } });
    }
    expect(readers).not.toContain(roleOf("inference-client"));
  });

  it("lets only the inference client invoke that endpoint, and tells it the name", () => {
    const invokers = Object.values(resources(t, "AWS::IAM::Policy")).filter((p) =>
      JSON.stringify(p.Properties.PolicyDocument).includes("sagemaker:InvokeEndpoint"),
    );
    expect(invokers).toHaveLength(1);
    const roleId = s.stack.getLogicalId(s.stack.services.byId["inference-client"].taskRole.node.defaultChild as never);
    expect(invokers[0]!.Properties.Roles).toEqual([{ Ref: roleId }]);
    expect(JSON.stringify(invokers[0]!.Properties.PolicyDocument)).toContain(":endpoint/page-scorer");
    expect(JSON.stringify(resources(t, "AWS::ECS::TaskDefinition"))).toContain(
      '{"Name":"SAGEMAKER_ENDPOINT_NAME","Value":"Page-Scorer"}',
    );
    // InvokeEndpoint is signed with the task role: no API key, and no secret to read.
    expect(JSON.stringify(t.toJSON())).not.toMatch(/MODEL_API_KEY_SECRET|secretsmanager:GetSecretValue","Effect":"Allow","Resource":\{"Fn::Join/);
  });

  it("lets the model's own role read the page images, and nothing else", () => {
    const work = s.stack.getLogicalId(s.stack.storage.workBucket.node.defaultChild as never);
    const policy = Object.values(resources(t, "AWS::S3::BucketPolicy")).find(
      (p) => (p.Properties.Bucket as { Ref: string }).Ref === work,
    )!;
    const allows = (policy.Properties.PolicyDocument as { Statement: { Effect: string; Principal: unknown; Action: unknown; Resource: unknown }[] }).Statement.filter(
      (st) => st.Effect === "Allow" && JSON.stringify(st.Principal).includes("page-scorer"),
    );
    expect(allows).toHaveLength(1);
    expect(allows[0]!.Action).toBe("s3:GetObject");
    expect(JSON.stringify(allows[0]!.Resource)).toContain("/batches/*/documents/*/images/*");
  });

  it("lets the database go with the stack when deletion protection is off, and has no e-mail subscriber", () => {
    const [cluster] = Object.values(resources(t, "AWS::RDS::DBCluster")) as unknown as { DeletionPolicy: string; Properties: { DeletionProtection: boolean } }[];
    expect(cluster!.Properties.DeletionProtection).toBe(false);
    expect(cluster!.DeletionPolicy).toBe("Delete");
    expect(resources(t, "AWS::SNS::Subscription")).toEqual({});
  });
});

describe("cdk-nag as wired here", () => {
  it("fails synthesis on an unacknowledged finding", () => {
    // The control for the suite's "no finding" assertions: the same plugin, one open port.
    const app = new App();
    const stack = new Stack(app, "Open", { env: { account: "123456789012", region: "eu-west-1" } });
    const vpc = new ec2.Vpc(stack, "Vpc", { natGateways: 0, maxAzs: 1, restrictDefaultSecurityGroup: false });
    const sg = new ec2.SecurityGroup(stack, "Open", { vpc });
    sg.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(5432));
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).toThrow(/AwsSolutions-EC23/);
  });
});
