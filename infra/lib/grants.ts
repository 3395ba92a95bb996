import { aws_iam as iam, type aws_ecs as ecs, type aws_s3 as s3, type aws_secretsmanager as secretsmanager, Stack } from "aws-cdk-lib";
import type { Construct } from "constructs";
import type { Deployable } from "./deployables.js";
import { acknowledgeWildcardResource } from "./nag.js";
import type { Queues } from "./queues.js";
import { workKeys } from "./storage.js";

/** What a deployable's task role is granted on. */
export interface GrantProps {
  readonly cluster: ecs.ICluster;
  readonly queues: Queues;
  readonly stagingBucket: s3.IBucket;
  readonly workBucket: s3.IBucket;
  /** An existing staging bucket's SSE-KMS key (config `stagingBucketKmsKeyArn`). */
  readonly stagingBucketKmsKeyArn?: string;
  /** A SageMaker endpoint the inference client invokes directly (config `sagemakerEndpointName`). */
  readonly sagemakerEndpointName?: string;
}

/** Least privilege: the queues a deployable consumes and produces, and its own key prefixes. */
export function grantDeployable(scope: Construct, d: Deployable, role: iam.IRole, props: GrantProps): void {
  const { queues } = props;
  const consumed = d.consumes === "dead-letter" ? [] : d.consumes;
  for (const key of consumed) {
    queues.byKey[key].queue.grantConsumeMessages(role);
    // Poison and permanently failing messages are moved to the DLQ at once by the worker.
    queues.byKey[key].dlq.grantSendMessages(role);
  }
  if (d.consumes === "dead-letter") for (const q of queues.all) q.dlq.grantConsumeMessages(role);
  for (const key of d.produces) queues.byKey[key].queue.grantSendMessages(role);
  // resolveQueueUrls looks up every catalog queue by name at start; a URL is not access.
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ["sqs:GetQueueUrl"],
      resources: queues.all.flatMap((q) => [q.queue.queueArn, q.dlq.queueArn]),
    }),
  );
  // Explicit S3 actions rather than grantRead/grantPut, whose `s3:GetObject*`, `s3:List*`
  // and `s3:Abort*` wildcards reach further than a stage needs.
  const { stagingBucket, workBucket } = props;
  if (d.readsStaging) {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ["s3:ListBucket"], resources: [stagingBucket.bucketArn] }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ["s3:GetObject"], resources: [stagingBucket.arnForObjects("*")] }),
    );
    acknowledgeWildcardResource(
      role,
      stagingBucket.arnForObjects("*"),
      "Source PDFs can sit under any key of the staging bucket; a batch names its prefixes at run time. Read only.",
    );
    const key = props.stagingBucketKmsKeyArn;
    if (key) {
      // An existing bucket with SSE-KMS: GetObject needs Decrypt on its key, and only through S3.
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ["kms:Decrypt"],
          resources: [key],
          conditions: { StringEquals: { "kms:ViaService": `s3.${Stack.of(scope).region}.amazonaws.com` } },
        }),
      );
    }
  }
  if (d.readsWork.length > 0 || d.writesWork.length > 0) {
    // Without ListBucket a missing key answers 403 instead of 404, and a retry could not
    // tell "not written yet" from "forbidden".
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["s3:ListBucket"], resources: [workBucket.bucketArn] }));
  }
  if (d.readsWork.length > 0) {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["s3:GetObject"],
        resources: d.readsWork.map((p) => workBucket.arnForObjects(workKeys[p])),
      }),
    );
  }
  for (const p of new Set([...d.readsWork, ...d.writesWork])) {
    acknowledgeWildcardResource(
      role,
      workBucket.arnForObjects(workKeys[p]),
      `Work keys embed batch and document ids generated at run time; batches/*/documents/*/${p}/* is the narrowest pattern for this stage's ${p}.`,
    );
  }
  if (d.writesWork.length > 0) {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        // PutObjectTagging: intermediates are tagged for the lifecycle rules (lib/storage.ts);
        // AbortMultipartUpload: a failed multipart upload of a big chunk is cleaned up.
        actions: ["s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"],
        resources: d.writesWork.map((p) => workBucket.arnForObjects(workKeys[p])),
      }),
    );
  }
  if (d.longJobs) {
    // Through the agent's endpoint, with the task role's credentials: only its own cluster's tasks.
    const tasks = Stack.of(scope).formatArn({ service: "ecs", resource: "task", resourceName: `${props.cluster.clusterName}/*` });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"], resources: [tasks] }),
    );
    acknowledgeWildcardResource(
      role,
      tasks,
      "A task protects itself through the ECS agent; its own task id exists only at run time, so the pattern is this cluster's tasks.",
    );
  }
  if (d.id === "inference-client" && props.sagemakerEndpointName) {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["sagemaker:InvokeEndpoint"],
        resources: [
          Stack.of(scope).formatArn({
            service: "sagemaker",
            resource: "endpoint",
            resourceName: props.sagemakerEndpointName.toLowerCase(),
          }),
        ],
      }),
    );
  }
}

/**
 * GetSecretValue on `secret` and nothing else of Secrets Manager (grantRead adds DescribeSecret),
 * plus decryption through Secrets Manager when the secret is encrypted with a customer managed key.
 */
export function grantSecretValue(secret: secretsmanager.ISecret, role: iam.IRole): void {
  // A secret known by name only: its ARN ends in six characters Secrets Manager chose.
  const arn = secret.secretFullArn ?? `${secret.secretArn}-??????`;
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ["secretsmanager:GetSecretValue"], resources: [arn] }));
  if (!secret.encryptionKey) return;
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ["kms:Decrypt"],
      resources: [secret.encryptionKey.keyArn],
      conditions: { StringEquals: { "kms:ViaService": `secretsmanager.${Stack.of(secret).region}.amazonaws.com` } },
    }),
  );
}
