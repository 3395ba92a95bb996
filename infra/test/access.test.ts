// Who may touch what: the buckets and their rules, each service's task role, the database. Split
// from stack.test.ts (the same deployment: a model endpoint with its own key secret under a CMK).
import type { CfnElement } from "aws-cdk-lib";
import { Match, type Template } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queues } from "@docpipe/queue";
import { serviceIds, type ServiceId } from "../lib/config.js";
import { resources, synth, type Synthesized } from "./synth.js";

const prefix = "docpipe-";
const modelKeyKms = "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";
let s: Synthesized;
let t: Template;

beforeAll(() => {
  s = synth({
    modelEndpointUrl: "https://model.example.com/invocations",
    modelApiKeySecretName: "docpipe/model-api-key",
    modelApiKeySecretKmsKeyArn: modelKeyKms,
    certificateArn: "arn:aws:acm:eu-west-1:123456789012:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
  });
  if (!s.template) throw new Error(`synthesis failed: ${String(s.error)}`);
  t = s.template;
});
afterAll(() => s?.cleanup());

const logicalId = (c: { node: { defaultChild?: unknown } }): string => s.stack.getLogicalId(c.node.defaultChild as CfnElement);
const queueNameById = (): Record<string, string> =>
  Object.fromEntries(Object.entries(resources(t, "AWS::SQS::Queue")).map(([id, r]) => [id, r.Properties.QueueName as string]));
const getAtt = (v: unknown): string | undefined => (v as { "Fn::GetAtt"?: [string, string] })?.["Fn::GetAtt"]?.[0];

describe("storage", () => {
  it("encrypts every bucket, blocks public access, denies plain HTTP", () => {
    const buckets = resources(t, "AWS::S3::Bucket");
    expect(Object.keys(buckets)).toHaveLength(3); // logs, staging, work
    for (const [id, b] of Object.entries(buckets)) {
      expect(b.Properties.BucketEncryption, id).toEqual({
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }],
      });
      expect(b.Properties.PublicAccessBlockConfiguration, id).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      t.hasResourceProperties("AWS::S3::BucketPolicy", {
        Bucket: { Ref: id },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
          ]),
        },
      });
    }
  });

  it("expires tagged chunks and single-page PDFs from the work bucket, never the PNGs", () => {
    const work = resources(t, "AWS::S3::Bucket")[logicalId(s.stack.storage.workBucket)]!;
    const rules = (work.Properties.LifecycleConfiguration as { Rules: Record<string, unknown>[] }).Rules;
    const days = s.config.intermediateRetentionDays;
    expect(rules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ ExpirationInDays: days, TagFilters: [{ Key: "docpipe-intermediate", Value: "chunk" }] }),
        expect.objectContaining({ ExpirationInDays: days, TagFilters: [{ Key: "docpipe-intermediate", Value: "page" }] }),
      ]),
    );
    // No rule without a tag filter expires objects: the images are the pipeline's output.
    expect(rules.filter((r) => r.ExpirationInDays !== undefined && r.TagFilters === undefined)).toEqual([]);
  });
});

describe("least privilege", () => {
  const pages = (p: string) => `work/batches/*/documents/*/${p}/*`;
  const all = (suffix: string) => Object.values(queues).map((q) => `${prefix}${q.name}${suffix}`);
  /** Written from DESIGN.md's table, independent of the deployables list in lib/deployables.ts. */
  const expected: Record<ServiceId, { receive: string[]; send: string[]; get: string[]; put: string[] }> = {
    // The single-page and converted-image queues for POST /batches/:id/retry-failed.
    ingestion: { receive: [], send: ["docpipe-ingest", "docpipe-single-page", "docpipe-converted-image"], get: ["staging/*"], put: [] },
    "chunking-orchestrator": {
      receive: ["docpipe-ingest"],
      send: ["docpipe-ingest-dlq", "docpipe-large", "docpipe-small", "docpipe-single-page"],
      get: ["staging/*"],
      put: [],
    },
    "splitter-large": {
      receive: ["docpipe-large"],
      send: ["docpipe-large-dlq", "docpipe-small"],
      get: ["staging/*"],
      put: [pages("chunks")],
    },
    "splitter-small": {
      receive: ["docpipe-small"],
      send: ["docpipe-single-page", "docpipe-small-dlq"],
      get: ["staging/*", pages("chunks")],
      put: [pages("pages")],
    },
    "page-converter": {
      receive: ["docpipe-single-page"],
      send: ["docpipe-single-page-dlq"],
      get: ["staging/*", pages("pages")],
      put: [pages("images")],
    },
    "inference-client": {
      receive: ["docpipe-converted-image"],
      send: ["docpipe-converted-image-dlq"],
      get: [pages("images")],
      put: [],
    },
    failsafe: {
      receive: all("-dlq"),
      send: all(""),
      get: ["staging/*", pages("chunks"), pages("images"), pages("pages")],
      put: [pages("chunks"), pages("images"), pages("pages")],
    },
  };

  const statementsOf = (id: ServiceId) => {
    const roleId = logicalId(s.stack.services.byId[id].taskRole);
    return Object.values(resources(t, "AWS::IAM::Policy"))
      .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
      .flatMap((p) => (p.Properties.PolicyDocument as { Statement: { Action: string | string[]; Resource: unknown; Effect: string }[] }).Statement);
  };
  const names = () => queueNameById();
  const buckets = () => ({
    [logicalId(s.stack.storage.workBucket)]: "work",
    [logicalId(s.stack.storage.stagingBucket as never)]: "staging",
  });
  const render = (r: unknown): string => {
    const att = getAtt(r);
    if (att) return names()[att] ?? buckets()[att] ?? att;
    const join = (r as { "Fn::Join"?: [string, unknown[]] })["Fn::Join"];
    if (join) return join[1].map(render).join(join[0]);
    return typeof r === "string" ? r : JSON.stringify(r);
  };
  const resourcesFor = (id: ServiceId, action: string): string[] =>
    statementsOf(id)
      .filter((st) => st.Effect === "Allow" && [st.Action].flat().includes(action))
      .flatMap((st) => [st.Resource].flat().map(render))
      .sort();

  it.each(serviceIds)("%s reaches only its own queues and key prefixes", (id) => {
    const e = expected[id];
    expect(resourcesFor(id, "sqs:ReceiveMessage")).toEqual([...e.receive].sort());
    expect(resourcesFor(id, "sqs:DeleteMessage")).toEqual([...e.receive].sort());
    expect(resourcesFor(id, "sqs:SendMessage")).toEqual([...e.send].sort());
    expect(resourcesFor(id, "s3:GetObject")).toEqual([...e.get].sort());
    expect(resourcesFor(id, "s3:PutObject")).toEqual([...e.put].sort());
    const actions = statementsOf(id).flatMap((st) => [st.Action].flat());
    expect(actions.filter((a) => a.includes("*") || a.startsWith("s3:Delete") || a === "sqs:PurgeQueue")).toEqual([]);
    for (const st of statementsOf(id)) expect(st.Resource, JSON.stringify(st.Action)).not.toBe("*");
    // The model API key's secret: the inference client reads it itself, and it alone.
    const keySecret = id === "inference-client" ? [expect.stringMatching(/:secretsmanager:eu-west-1:123456789012:secret:docpipe\/model-api-key-\?{6}$/)] : [];
    expect(resourcesFor(id, "secretsmanager:GetSecretValue")).toEqual(keySecret);
    expect(resourcesFor(id, "kms:Decrypt")).toEqual(id === "inference-client" ? [modelKeyKms] : []);
  });

  it("keeps the database reachable only from the services' security group, with credentials from Secrets Manager", () => {
    t.hasResourceProperties("AWS::RDS::DBCluster", {
      Engine: "aurora-postgresql",
      StorageEncrypted: true,
      ServerlessV2ScalingConfiguration: { MinCapacity: 0, MaxCapacity: s.config.databaseMaxCapacity },
    });
    const dbSg = Object.entries(resources(t, "AWS::EC2::SecurityGroupIngress")).filter(([, r]) => r.Properties.FromPort === 5432);
    expect(dbSg).toHaveLength(1);
    expect(getAtt(dbSg[0]![1].Properties.SourceSecurityGroupId)).toBe(logicalId(s.stack.network.servicesSecurityGroup));
    t.hasResourceProperties("AWS::RDS::DBInstance", { PubliclyAccessible: false });
    for (const [id, td] of Object.entries(resources(t, "AWS::ECS::TaskDefinition"))) {
      const [c] = td.Properties.ContainerDefinitions as { Environment?: { Name: string }[]; Secrets?: { Name: string }[] }[];
      expect((c!.Environment ?? []).map((e) => e.Name), id).not.toContain("DB_PASSWORD");
      expect((c!.Secrets ?? []).map((e) => e.Name), id).toEqual(expect.arrayContaining(["DB_USERNAME", "DB_PASSWORD"]));
    }
  });
});
