import { ArnFormat, aws_ecs as ecs, aws_kms as kms, aws_secretsmanager as secretsmanager, Stack } from "aws-cdk-lib";
import type { aws_ec2 as ec2, aws_elasticloadbalancingv2 as elbv2, aws_s3 as s3 } from "aws-cdk-lib";
import { Construct } from "constructs";
import type { DocpipeConfig, ServiceId } from "./config.js";
import type { Database } from "./database.js";
import { AdminTask } from "./admin-task.js";
import { deployables, INGESTION_PORT, WORKER_HEALTH_PORT } from "./deployables.js";
import { grantDeployable, grantSecretValue } from "./grants.js";
import { ADMIN_PACKAGE, MIGRATE_PACKAGE, serviceImage } from "./images.js";
import { Migration } from "./migration.js";
import { addIngestionEndpoint } from "./ingestion-endpoint.js";
import { PipelineService } from "./pipeline-service.js";
import { QueueScaling, targetBacklogPerTask } from "./queue-scaling.js";
import type { Queues } from "./queues.js";

// The package's `./services` export (tests/images builds and starts these) and what tests import.
export { deployables, imagePackages, INGESTION_PORT, WORKER_HEALTH_PORT, type Deployable } from "./deployables.js";
export { grantSecretValue } from "./grants.js";

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
      grantDeployable(this, d, svc.taskRole, {
        cluster: this.cluster,
        queues,
        stagingBucket: props.stagingBucket,
        workBucket: props.workBucket,
        ...(config.stagingBucketKmsKeyArn && { stagingBucketKmsKeyArn: config.stagingBucketKmsKeyArn }),
        ...(config.sagemakerEndpointName && { sagemakerEndpointName: config.sagemakerEndpointName }),
      });
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
}
