import {
  aws_ec2 as ec2,
  aws_ecs as ecs,
  aws_iam as iam,
  aws_logs as logs,
  Duration,
  RemovalPolicy,
} from "aws-cdk-lib";
import { Construct } from "constructs";
import type { ServiceSize } from "./config.js";
import { HEALTHCHECK_SCRIPT } from "./images.js";
import { acknowledge } from "./nag.js";

export interface PipelineServiceProps {
  readonly cluster: ecs.ICluster;
  readonly securityGroup: ec2.ISecurityGroup;
  readonly image: ecs.ContainerImage;
  readonly size: ServiceSize;
  readonly environment: Record<string, string>;
  readonly secrets: Record<string, ecs.Secret>;
  readonly logRetentionDays: number;
  /**
   * Run on Fargate Spot beyond the first `onDemandBase` tasks (interruptions arrive as SIGTERM with
   * two minutes' notice); unset runs every task on demand.
   */
  readonly spot?: { readonly onDemandBase: number };
  /** The container's listening port, for services behind the load balancer. */
  readonly port?: number;
}

/**
 * One deployable as a Fargate service: its own task role (granted by the caller, nothing by
 * default), log group and task size. Queue workers start at whatever count autoscaling
 * leaves them; nothing here pins a desired count, so a deploy never resets a busy service.
 */
export class PipelineService extends Construct {
  public readonly service: ecs.FargateService;
  public readonly taskDefinition: ecs.FargateTaskDefinition;
  public readonly container: ecs.ContainerDefinition;
  public readonly taskRole: iam.Role;
  public readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: PipelineServiceProps) {
    super(scope, id);
    this.taskRole = new iam.Role(this, "TaskRole", {
      assumedBy: new iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
      description: `docpipe ${id}: only its own queues and S3 prefixes`,
    });
    this.logGroup = new logs.LogGroup(this, "Logs", {
      retention: props.logRetentionDays as logs.RetentionDays,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.taskDefinition = new ecs.FargateTaskDefinition(this, "Task", {
      cpu: props.size.cpu,
      memoryLimitMiB: props.size.memoryMiB,
      ...(props.size.ephemeralStorageGiB && { ephemeralStorageGiB: props.size.ephemeralStorageGiB }),
      taskRole: this.taskRole,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    this.container = this.taskDefinition.addContainer("app", {
      image: props.image,
      environment: props.environment,
      secrets: props.secrets,
      logging: ecs.LogDrivers.awsLogs({ logGroup: this.logGroup, streamPrefix: id }),
      // SIGTERM first, SIGKILL after this: the Fargate maximum, matching Spot's two-minute
      // notice. A worker finishes what it can in that time and hands the rest back to the
      // queue (every stage is idempotent). Jobs that run longer (a large split, a failsafe
      // break-down) hold ECS task scale-in protection, so neither scale-in nor a deployment
      // stops their task while they run.
      stopTimeout: Duration.seconds(120),
      // The image's own check (docker/healthcheck.sh), which ECS does not run by itself: the
      // API's /healthz, or a worker's /livez on HEALTH_PORT (its poll loops are turning). An
      // unhealthy task is replaced.
      healthCheck: {
        command: ["CMD", HEALTHCHECK_SCRIPT],
        interval: Duration.seconds(30),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(60),
      },
      readonlyRootFilesystem: false,
      ...(props.port !== undefined && { portMappings: [{ containerPort: props.port }] }),
    });
    acknowledge(
      this.taskDefinition,
      "ECS2",
      "Environment variables hold only non-secret settings (bucket and queue names, endpoints, sizes, the name of the model API key's secret); the database credentials come from Secrets Manager as container secrets, and the inference client reads the model API key from Secrets Manager itself.",
    );
    acknowledge(
      this.taskDefinition,
      "IAM5[Resource::*]",
      "The execution role's ecr:GetAuthorizationToken has no resource-level permissions and requires Resource *; image pulls and log writes are scoped by CDK to this repository and log group.",
    );
    this.service = new ecs.FargateService(this, "Service", {
      cluster: props.cluster,
      taskDefinition: this.taskDefinition,
      securityGroups: [props.securityGroup],
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      assignPublicIp: false,
      capacityProviderStrategies: props.spot
        ? [
            // The base runs on demand; every task beyond it on Spot (weight 0 takes no share past its base).
            ...(props.spot.onDemandBase > 0 ? [{ capacityProvider: "FARGATE", base: props.spot.onDemandBase, weight: 0 }] : []),
            { capacityProvider: "FARGATE_SPOT", weight: 1 },
          ]
        : [{ capacityProvider: "FARGATE", weight: 1 }],
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { rollback: true },
      // Explicit, as the services were first deployed: with cdk.json's
      // disableExplicitDeploymentControllerForCircuitBreaker flag CDK would drop it, and
      // CloudFormation replaces a service whose DeploymentController changes.
      deploymentController: { type: ecs.DeploymentControllerType.ECS },
      enableExecuteCommand: false,
    });
  }
}
