import { aws_s3 as s3, aws_s3_notifications as s3n, CfnOutput, Fn, Stack, type StackProps } from "aws-cdk-lib";
import { ADMIN_CONTAINER } from "./admin-task.js";
import { ENTRYPOINT_SCRIPT } from "./images.js";
import type { Construct } from "constructs";
import type { DocpipeConfig } from "./config.js";
import { Database } from "./database.js";
import { ModelTier } from "./model-tier.js";
import { Monitoring } from "./monitoring.js";
import { Network } from "./network.js";
import { acknowledge } from "./nag.js";
import { Queues } from "./queues.js";
import { RECONCILER_PACKAGE, serviceImage } from "./images.js";
import { ReconcilerTask } from "./reconciler-task.js";
import { Services } from "./services.js";
import { Storage } from "./storage.js";

export interface DocpipeStackProps extends StackProps {
  readonly config: DocpipeConfig;
}

/** The whole pipeline in one stack: each concern is a construct under lib/. */
export class DocpipeStack extends Stack {
  public readonly network: Network;
  public readonly storage: Storage;
  public readonly queues: Queues;
  public readonly database: Database;
  /** The model endpoint, when the deploy names none. */
  public readonly modelTier?: ModelTier;
  public readonly services: Services;
  /** The reconciler's pass every few minutes (lib/reconciler-task.ts). */
  public readonly reconciler: ReconcilerTask;
  public readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, props: DocpipeStackProps) {
    super(scope, id, props);
    const { config } = props;
    this.network = new Network(this, "Network", {
      natGateways: config.natGateways,
      logRetentionDays: config.logRetentionDays,
    });
    this.storage = new Storage(this, "Storage", {
      stagingBucketName: config.stagingBucketName,
      intermediateRetentionDays: config.intermediateRetentionDays,
      imageReaderRoleArn: config.modelRoleArn,
    });
    this.queues = new Queues(this, "Queues", { prefix: config.queuePrefix });
    // Every PNG the page converter writes becomes a message for the inference client.
    this.storage.workBucket.addEventNotification(
      s3.EventType.OBJECT_CREATED,
      new s3n.SqsDestination(this.queues.byKey.convertedImage.queue),
      { prefix: "batches/", suffix: ".png" },
    );
    this.database = new Database(this, "Database", {
      vpc: this.network.vpc,
      clientSecurityGroup: this.network.servicesSecurityGroup,
      minCapacity: config.databaseMinCapacity,
      maxCapacity: config.databaseMaxCapacity,
      deletionProtection: config.deletionProtection,
    });
    if (config.modelTier) {
      this.modelTier = new ModelTier(this, "ModelTier", {
        config: config.modelTier,
        workBucket: this.storage.workBucket,
        logRetentionDays: config.logRetentionDays,
      });
    }
    this.services = new Services(this, "Services", {
      config,
      vpc: this.network.vpc,
      securityGroup: this.network.servicesSecurityGroup,
      queues: this.queues,
      stagingBucket: this.storage.stagingBucket,
      workBucket: this.storage.workBucket,
      logsBucket: this.storage.logsBucket,
      database: this.database,
      ...(this.modelTier && { model: { url: this.modelTier.invocationUrl, apiKeySecret: this.modelTier.apiKeySecret } }),
    });
    this.reconciler = new ReconcilerTask(this, "Reconciler", {
      cluster: this.services.cluster,
      securityGroup: this.network.servicesSecurityGroup,
      image: serviceImage(RECONCILER_PACKAGE),
      ...this.services.taskSettings,
      queues: this.queues,
      logRetentionDays: config.logRetentionDays,
    });
    // Its first pass finds the tables there.
    this.reconciler.schedule.node.addDependency(this.services.migration.resource);
    this.monitoring = new Monitoring(this, "Monitoring", {
      queues: this.queues,
      cluster: this.services.cluster,
      services: this.services.byId,
      loadBalancer: this.services.loadBalancer,
      alarmEmail: config.alarmEmail,
      maxMessageAgeSeconds: config.maxMessageAgeSeconds,
      database: this.database,
      databaseMaxCapacity: config.databaseMaxCapacity,
    });

    this.modelTier?.notify(this.monitoring.topic);

    new CfnOutput(this, "IngestionUrl", {
      description: "POST /batches here (internal load balancer)",
      value: this.services.ingestionUrl,
    });
    new CfnOutput(this, "StagingBucket", { value: this.storage.stagingBucket.bucketName });
    new CfnOutput(this, "WorkBucket", { value: this.storage.workBucket.bucketName });
    new CfnOutput(this, "AlarmTopic", { value: this.monitoring.topic.topicArn });
    new CfnOutput(this, "DatabaseSecret", { value: this.database.secret.secretArn });
    // The way in (README, "The first API key"): start the admin task, run admin commands in it,
    // tunnel to the database through it.
    const cluster = this.services.cluster.clusterName;
    new CfnOutput(this, "AdminRunTask", {
      description: "Starts the admin task (an hour, ECS Exec on) and prints its ARN",
      value: this.services.admin.runTaskCommand,
    });
    new CfnOutput(this, "AdminExecCommand", {
      // Through the image's entrypoint, which builds DATABASE_URL, and by absolute path: an exec
      // session runs neither the entrypoint nor, necessarily, in the WORKDIR.
      description: "Runs a docpipe command in the admin task started by AdminRunTask: here, the first API key",
      value: Fn.join("", [
        "aws ecs execute-command --cluster ",
        cluster,
        ` --container ${ADMIN_CONTAINER} --interactive --task <task-arn> --command "${ENTRYPOINT_SCRIPT} node /app/dist/main.js keys create --name first --owner ops --plan standard --bucket `,
        this.storage.stagingBucket.bucketName,
        '"',
      ]),
    });
    new CfnOutput(this, "DatabaseTunnelCommand", {
      description: "Forwards localhost:15432 to Aurora through the admin task (task id and runtime id: README)",
      value: Fn.join("", [
        "aws ssm start-session --target ecs:",
        cluster,
        `_<task-id>_<runtime-id> --document-name AWS-StartPortForwardingSessionToRemoteHost --parameters '{"host":["`,
        this.database.cluster.clusterEndpoint.hostname,
        `"],"portNumber":["5432"],"localPortNumber":["15432"]}'`,
      ]),
    });
    if (this.modelTier) {
      new CfnOutput(this, "ModelEndpointName", { value: this.modelTier.endpoint.endpointName });
      new CfnOutput(this, "ModelApiUrl", { description: "POST {bucket, key} here with x-api-key", value: this.modelTier.invocationUrl });
      new CfnOutput(this, "ModelApiKeySecret", { value: this.modelTier.apiKeySecret.secretArn });
    }

    const notificationsHandler = this.node.children.find((c) => c.node.id.startsWith("BucketNotificationsHandler"));
    if (notificationsHandler) {
      acknowledge(
        notificationsHandler,
        "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "CDK's bucket-notifications custom resource uses the AWS managed basic execution role (CloudWatch Logs only); it is not configurable.",
      );
    }
  }
}
