import { ArnFormat, aws_ecs as ecs, aws_iam as iam, aws_kms as kms, aws_secretsmanager as secretsmanager, Stack } from "aws-cdk-lib";
import type { aws_ec2 as ec2, aws_elasticloadbalancingv2 as elbv2, aws_s3 as s3 } from "aws-cdk-lib";
import { Construct } from "constructs";
import type { QueueKey } from "@docpipe/queue";
import type { DocpipeConfig, ServiceId } from "./config.js";
import type { Database } from "./database.js";
import { AdminTask } from "./admin-task.js";
import { ADMIN_PACKAGE, MIGRATE_PACKAGE, RECONCILER_PACKAGE, serviceImage } from "./images.js";
import { Migration } from "./migration.js";
import { addIngestionEndpoint } from "./ingestion-endpoint.js";
import { acknowledgeWildcardResource } from "./nag.js";
import { PipelineService } from "./pipeline-service.js";
import { QueueScaling, targetBacklogPerTask } from "./queue-scaling.js";
import type { Queues } from "./queues.js";
import { workKeys } from "./storage.js";

/** Port the ingestion service listens on inside its container. */
export const INGESTION_PORT = 8080;
/** Loopback port where a queue worker serves GET /livez for its health check (HEALTH_PORT). */
export const WORKER_HEALTH_PORT = 8081;

type WorkPrefix = keyof typeof workKeys;

/** What one deployable may touch; its task role gets exactly this and nothing else. */
export interface Deployable {
  readonly id: ServiceId;
  /** The workspace package the image is built from (`docker build --build-arg SERVICE=`). */
  readonly package: string;
  /** Queues it consumes; `"dead-letter"` is every DLQ (the failsafe). */
  readonly consumes: readonly QueueKey[] | "dead-letter";
  readonly produces: readonly QueueKey[];
  readonly readsStaging: boolean;
  readonly readsWork: readonly WorkPrefix[];
  readonly writesWork: readonly WorkPrefix[];
  /**
   * Jobs can take longer than the 120 s between SIGTERM and SIGKILL (a multi-gigabyte split): the
   * service holds ECS task scale-in protection while one runs (its role may set it), and runs on
   * on-demand Fargate, because a Spot interruption ignores protection.
   */
  readonly longJobs?: boolean;
  /** The variable the service reads its worker concurrency from (see its src/config.ts). */
  readonly concurrencyEnv?: string;
  readonly environment?: Record<string, string>;
}

/** The pipeline of DESIGN.md: who consumes and produces what, and which keys each stage reads and writes. */
export const deployables: readonly Deployable[] = [
  {
    id: "ingestion",
    package: "ingestion",
    consumes: [],
    // retry-failed re-sends a failed page to the single-page queue, or re-announces its PNG on the converted-image queue.
    produces: ["ingest", "singlePage", "convertedImage"],
    readsStaging: true,
    readsWork: [],
    writesWork: [],
    // Behind the load balancer: its X-Forwarded-For names the client that failed authentications are counted per.
    environment: { PORT: String(INGESTION_PORT), HOST: "0.0.0.0", TRUST_PROXY: "1" },
  },
  {
    id: "chunking-orchestrator",
    package: "chunking-orchestrator",
    consumes: ["ingest"],
    produces: ["large", "small", "singlePage"],
    readsStaging: true,
    readsWork: [],
    writesWork: [],
    concurrencyEnv: "CONCURRENCY",
  },
  {
    id: "splitter-large",
    package: "splitter",
    consumes: ["large"],
    produces: ["small"],
    readsStaging: true,
    readsWork: [],
    writesWork: ["chunks"],
    longJobs: true,
    concurrencyEnv: "CONCURRENCY",
    environment: { ROLE: "large" },
  },
  {
    id: "splitter-small",
    package: "splitter",
    consumes: ["small"],
    produces: ["singlePage"],
    readsStaging: true,
    readsWork: ["chunks"],
    writesWork: ["pages"],
    concurrencyEnv: "CONCURRENCY",
    environment: { ROLE: "small" },
  },
  {
    id: "page-converter",
    package: "page-converter",
    consumes: ["singlePage"],
    produces: [],
    readsStaging: true,
    readsWork: ["pages"],
    writesWork: ["images"],
    // One render thread per vCPU; the converter takes as many pages as it has threads.
    concurrencyEnv: "RENDER_THREADS",
  },
  {
    id: "inference-client",
    package: "inference-client",
    consumes: ["convertedImage"],
    produces: [],
    readsStaging: false,
    readsWork: ["images"],
    writesWork: [],
    concurrencyEnv: "WORKER_CONCURRENCY",
  },
  {
    id: "failsafe",
    package: "failsafe",
    consumes: "dead-letter",
    // Replays go back to the queue they came from; a full break-down re-enters as pages.
    // What it gives up on is parked for a person.
    produces: ["ingest", "large", "small", "singlePage", "convertedImage", "parked"],
    readsStaging: true,
    readsWork: ["chunks", "pages", "images"],
    writesWork: ["chunks", "pages", "images"],
    longJobs: true,
    concurrencyEnv: "CONCURRENCY",
  },
];

/** Every image the stack deploys, by services/ directory: one per deployable package, the migrate, admin and reconciler tasks'. */
export const imagePackages: readonly string[] = [...new Set(deployables.map((d) => d.package)), MIGRATE_PACKAGE, ADMIN_PACKAGE, RECONCILER_PACKAGE];

export interface ServicesProps {
  readonly config: DocpipeConfig;
  readonly vpc: ec2.IVpc;
  readonly securityGroup: ec2.ISecurityGroup;
  readonly queues: Queues;
  readonly stagingBucket: s3.IBucket;
  readonly workBucket: s3.IBucket;
  readonly logsBucket: s3.IBucket;
  readonly database: Database;
  /** The deployed model tier's URL and API key (lib/model-tier.ts); unset when the config names an endpoint. */
  readonly model?: { readonly url: string; readonly apiKeySecret: secretsmanager.ISecret };
}

/**
 * The ECS cluster, one Fargate service per deployable, the ingestion load balancer, queue
 * autoscaling and the migration task that runs before any of them starts.
 */
export class Services extends Construct {
  public readonly cluster: ecs.Cluster;
  public readonly byId: Readonly<Record<ServiceId, PipelineService>>;
  public readonly scaling: Readonly<Partial<Record<ServiceId, QueueScaling>>>;
  public readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  public readonly targetGroup: elbv2.ApplicationTargetGroup;
  /** Where operators call the API: `https://` with a certificate, `http://` without. */
  public readonly ingestionUrl: string;
  public readonly migration: Migration;
  public readonly admin: AdminTask;
  /** What every task gets: settings (no secrets) and the database credentials, for tasks defined elsewhere. */
  public readonly taskSettings: { readonly environment: Record<string, string>; readonly secrets: Record<string, ecs.Secret> };

  constructor(scope: Construct, id: string, props: ServicesProps) {
    super(scope, id);
    const { config, queues, database } = props;
    const stack = Stack.of(this);
    this.cluster = new ecs.Cluster(this, "Cluster", {
      vpc: props.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
      enableFargateCapacityProviders: true,
      // ECS Exec sessions (the admin task) are not logged: `docpipe keys create` prints a new API
      // key there, which must not land in CloudWatch Logs. CloudTrail still records each session.
      executeCommandConfiguration: { logging: ecs.ExecuteCommandLogging.NONE },
    });

    // The entrypoint (docker/entrypoint.sh) builds DATABASE_URL from these, so the password
    // reaches the task from Secrets Manager and never appears in the task definition.
    const dbEnv = {
      DB_HOST: database.cluster.clusterEndpoint.hostname,
      DB_PORT: String(database.cluster.clusterEndpoint.port),
      DB_NAME: database.databaseName,
    };
    const dbSecrets = {
      DB_USERNAME: ecs.Secret.fromSecretsManager(database.secret, "username"),
      DB_PASSWORD: ecs.Secret.fromSecretsManager(database.secret, "password"),
    };
    const commonEnv = {
      ...dbEnv,
      AWS_REGION: stack.region,
      QUEUE_PREFIX: config.queuePrefix,
      WORK_BUCKET: props.workBucket.bucketName,
      STAGING_BUCKET: props.stagingBucket.bucketName,
      LOG_LEVEL: "info",
      NODE_ENV: "production",
    };
    const modelUrl = props.model?.url ?? config.modelEndpointUrl;
    // The model API key is not a container secret (ECS would read it with the execution role):
    // the inference client reads it itself, at start and again on a 403, with its task role.
    const modelKey = props.model
      ? { secret: props.model.apiKeySecret, id: props.model.apiKeySecret.secretArn }
      : config.modelApiKeySecretName
        ? { secret: this.importedModelKey(config.modelApiKeySecretName, config.modelApiKeySecretKmsKeyArn), id: config.modelApiKeySecretName }
        : undefined;
    const modelEnv: Record<string, string> = modelUrl
      ? { MODEL_URL: modelUrl, ...(modelKey && { MODEL_API_KEY_SECRET: modelKey.id }) }
      : { SAGEMAKER_ENDPOINT_NAME: config.sagemakerEndpointName ?? "" };

    this.taskSettings = { environment: commonEnv, secrets: dbSecrets };

    this.migration = new Migration(this, "Migration", {
      cluster: this.cluster,
      securityGroup: props.securityGroup,
      image: serviceImage(MIGRATE_PACKAGE),
      environment: dbEnv,
      secrets: dbSecrets,
      logRetentionDays: config.logRetentionDays,
    });
    // The task definition references only the cluster endpoint; the migration must also wait
    // for the writer instance, or its first connection finds nobody to answer.
    this.migration.resource.node.addDependency(database.cluster);
    this.admin = new AdminTask(this, "Admin", {
      cluster: this.cluster,
      securityGroup: props.securityGroup,
      image: serviceImage(ADMIN_PACKAGE),
      environment: commonEnv,
      secrets: dbSecrets,
      queues,
      logRetentionDays: config.logRetentionDays,
    });

    const byId: Partial<Record<ServiceId, PipelineService>> = {};
    const scaling: Partial<Record<ServiceId, QueueScaling>> = {};
    for (const d of deployables) {
      const size = config.sizes[d.id];
      const isWorker = d.consumes === "dead-letter" || d.consumes.length > 0;
      const svc = new PipelineService(this, d.id, {
        cluster: this.cluster,
        securityGroup: props.securityGroup,
        image: serviceImage(d.package),
        size,
        environment: {
          ...commonEnv,
          SERVICE_NAME: d.id,
          ...(d.concurrencyEnv && { [d.concurrencyEnv]: String(size.concurrency) }),
          ...(d.id === "inference-client" ? modelEnv : {}),
          ...(isWorker && { HEALTH_PORT: String(WORKER_HEALTH_PORT) }),
          ...d.environment,
        },
        secrets: dbSecrets,
        logRetentionDays: config.logRetentionDays,
        // Spot suits short idempotent jobs: an interruption costs at most one page's work.
        ...(config.useSpot && isWorker && !d.longJobs && { spot: { onDemandBase: config.onDemandBaseTasks } }),
        ...(d.id === "ingestion" && { port: INGESTION_PORT }),
      });
      svc.service.node.addDependency(this.migration.resource);
      this.grant(d, svc.taskRole, props);
      if (d.id === "inference-client" && modelKey) grantSecretValue(modelKey.secret, svc.taskRole);
      byId[d.id] = svc;

      if (isWorker) {
        const consumed =
          d.consumes === "dead-letter"
            ? // The parked queue is read by people, not the failsafe; its DLQ never feeds it work.
              queues.all.filter((q) => q.key !== "parked").map((q) => q.dlq)
            : d.consumes.map((k) => queues.byKey[k].queue);
        scaling[d.id] = new QueueScaling(this, `${d.id}-scaling`, {
          cluster: this.cluster,
          service: svc.service,
          queues: consumed,
          minTasks: size.minTasks,
          maxTasks: size.maxTasks,
          protectedJobs: d.longJobs ?? false,
          targetBacklogPerTask: targetBacklogPerTask({
            concurrency: size.concurrency,
            secondsPerMessage: size.secondsPerMessage,
            acceptableLatencySeconds: config.acceptableLatencySeconds,
          }),
        });
      }
    }
    this.byId = byId as Record<ServiceId, PipelineService>;
    this.scaling = scaling;

    const ingestion = this.byId.ingestion;
    const endpoint = addIngestionEndpoint(this, {
      vpc: props.vpc,
      service: ingestion.service,
      containerPort: INGESTION_PORT,
      certificateArn: config.certificateArn,
      allowedCidr: config.ingestionAllowedCidr,
      logsBucket: props.logsBucket,
    });
    this.loadBalancer = endpoint.loadBalancer;
    this.targetGroup = endpoint.targetGroup;
    this.ingestionUrl = endpoint.url;
    const ingestionScaling = ingestion.service.autoScaleTaskCount({
      minCapacity: config.sizes.ingestion.minTasks,
      maxCapacity: config.sizes.ingestion.maxTasks,
    });
    ingestionScaling.scaleOnCpuUtilization("Cpu", { targetUtilizationPercent: 60 });
  }

  /** A team's own model API key secret, by name (and its customer managed key, when it has one). */
  private importedModelKey(name: string, kmsKeyArn: string | undefined): secretsmanager.ISecret {
    return secretsmanager.Secret.fromSecretAttributes(this, "ModelApiKey", {
      secretPartialArn: Stack.of(this).formatArn({ service: "secretsmanager", resource: "secret", resourceName: name, arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
      ...(kmsKeyArn && { encryptionKey: kms.Key.fromKeyArn(this, "ModelApiKeyKms", kmsKeyArn) }),
    });
  }

  /** Least privilege: the queues a deployable consumes and produces, and its own key prefixes. */
  private grant(d: Deployable, role: iam.IRole, props: ServicesProps): void {
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
      const key = props.config.stagingBucketKmsKeyArn;
      if (key) {
        // An existing bucket with SSE-KMS: GetObject needs Decrypt on its key, and only through S3.
        role.addToPrincipalPolicy(
          new iam.PolicyStatement({
            actions: ["kms:Decrypt"],
            resources: [key],
            conditions: { StringEquals: { "kms:ViaService": `s3.${Stack.of(this).region}.amazonaws.com` } },
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
      const tasks = Stack.of(this).formatArn({ service: "ecs", resource: "task", resourceName: `${this.cluster.clusterName}/*` });
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"], resources: [tasks] }),
      );
      acknowledgeWildcardResource(
        role,
        tasks,
        "A task protects itself through the ECS agent; its own task id exists only at run time, so the pattern is this cluster's tasks.",
      );
    }
    if (d.id === "inference-client" && props.config.sagemakerEndpointName) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ["sagemaker:InvokeEndpoint"],
          resources: [
            Stack.of(this).formatArn({
              service: "sagemaker",
              resource: "endpoint",
              resourceName: props.config.sagemakerEndpointName.toLowerCase(),
            }),
          ],
        }),
      );
    }
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
