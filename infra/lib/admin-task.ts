import { aws_ec2 as ec2, aws_ecs as ecs, aws_iam as iam, type aws_logs as logs, Fn } from "aws-cdk-lib";
import { Construct } from "constructs";
import { acknowledge } from "./nag.js";
import { oneOffTask, type OneOffTaskProps } from "./one-off-task.js";

/** `image`: the CLI's (services/cli). */
export type AdminTaskProps = OneOffTaskProps;

/** The admin container's name, for `--container` and `containerOverrides`. */
export const ADMIN_CONTAINER = "admin";
/** How long a plain run of the admin task stays up for ECS Exec and tunnels, in seconds. */
export const ADMIN_SHELL_SECONDS = 3600;

/**
 * The `admin` task: the CLI's image (`docpipe keys|plans|usage|redrive ...`) with the database
 * credentials the services have, run on demand with `aws ecs run-task`, never as a service.
 *
 * Run plainly it sleeps for an hour with ECS Exec on, which is the way in to Aurora (isolated
 * subnets, no bastion): `aws ecs execute-command` runs admin commands in it, the first API key
 * included, and an SSM port-forward through it (AWS-StartPortForwardingSessionToRemoteHost) lets
 * Studio and the CLI on a laptop reach the database. Run with a command override it runs that one
 * command and stops, its output in its log group.
 */
export class AdminTask extends Construct {
  public readonly taskDefinition: ecs.FargateTaskDefinition;
  public readonly logGroup: logs.LogGroup;
  /** `aws ecs run-task ...` that starts the admin task and prints its ARN. */
  public readonly runTaskCommand: string;

  constructor(scope: Construct, id: string, props: AdminTaskProps) {
    super(scope, id);
    ({ taskDefinition: this.taskDefinition, logGroup: this.logGroup } = oneOffTask(this, { cpu: 512, memoryLimitMiB: 1024, logRetentionDays: props.logRetentionDays }));
    this.taskDefinition.addContainer(ADMIN_CONTAINER, {
      image: props.image,
      environment: { ...props.environment, SERVICE_NAME: "admin" },
      secrets: props.secrets,
      logging: ecs.LogDrivers.awsLogs({ logGroup: this.logGroup, streamPrefix: "admin" }),
      // The image's entrypoint builds DATABASE_URL and then runs this: a shell to exec into.
      command: ["sleep", String(ADMIN_SHELL_SECONDS)],
      essential: true,
    });
    const role = this.taskDefinition.taskRole;

    // ECS Exec and SSM port-forwarding: the SSM agent Fargate injects opens its channels with
    // the task role. These actions have no resource-level permissions.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"],
        resources: ["*"],
      }),
    );
    acknowledge(
      this.taskDefinition,
      "IAM5[Resource::*]",
      "ECS Exec needs ssmmessages:Create/Open Control/Data Channel, which support only Resource *; the execution role's ecr:GetAuthorizationToken too.",
    );
    acknowledge(
      this.taskDefinition,
      "ECS2",
      "Environment variables hold only non-secret settings (database host, bucket and queue names); the database credentials come from Secrets Manager as container secrets.",
    );
    // `docpipe redrive`: from any dead-letter queue (and the parked queue) back to any queue.
    for (const q of props.queues.all) {
      q.dlq.grantConsumeMessages(role);
      q.queue.grantSendMessages(role);
      if (q.key === "parked") q.queue.grantConsumeMessages(role);
    }
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["sqs:GetQueueUrl"],
        resources: props.queues.all.flatMap((q) => [q.queue.queueArn, q.dlq.queueArn]),
      }),
    );

    const subnets = props.cluster.vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }).subnetIds;
    this.runTaskCommand = Fn.join("", [
      "aws ecs run-task --cluster ",
      props.cluster.clusterName,
      " --task-definition ",
      this.taskDefinition.family,
      " --launch-type FARGATE --enable-execute-command --network-configuration 'awsvpcConfiguration={subnets=[",
      Fn.join(",", subnets),
      "],securityGroups=[",
      props.securityGroup.securityGroupId,
      "],assignPublicIp=DISABLED}' --query 'tasks[0].taskArn' --output text",
    ]);
  }
}
