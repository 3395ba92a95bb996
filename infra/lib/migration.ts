import {
  aws_ec2 as ec2,
  aws_ecs as ecs,
  aws_iam as iam,
  aws_lambda as lambda,
  aws_logs as logs,
  aws_stepfunctions as sfn,
  CustomResource,
  Duration,
  RemovalPolicy,
  Stack,
  custom_resources as cr,
} from "aws-cdk-lib";
import { Construct } from "constructs";
import { acknowledge, acknowledgeWildcardResource } from "./nag.js";
import { oneOffTask, type OneOffTaskProps } from "./one-off-task.js";

/** A one-off task's props; the migration sends to no queue. */
export type MigrationProps = Omit<OneOffTaskProps, "queues">;

/**
 * Two small handlers for the provider framework: onEvent starts the task, isComplete polls it
 * until it stops and fails the deployment (with the task's exit code and stop reason) unless
 * the migrate container exited 0. Inline, so synth needs no bundling.
 */
const handlerCode = `
const { ECSClient, RunTaskCommand, DescribeTasksCommand } = require("@aws-sdk/client-ecs");
const ecs = new ECSClient({});
exports.onEvent = async (event) => {
  if (event.RequestType === "Delete") return { PhysicalResourceId: event.PhysicalResourceId };
  const p = event.ResourceProperties;
  const out = await ecs.send(new RunTaskCommand({
    cluster: p.Cluster, taskDefinition: p.TaskDefinition, launchType: "FARGATE", count: 1,
    startedBy: "docpipe-migrate",
    networkConfiguration: { awsvpcConfiguration: { subnets: p.Subnets, securityGroups: p.SecurityGroups, assignPublicIp: "DISABLED" } },
  }));
  const task = out.tasks && out.tasks[0];
  if (!task) throw new Error("RunTask started no migration task: " + JSON.stringify(out.failures));
  return { PhysicalResourceId: task.taskArn };
};
exports.isComplete = async (event) => {
  if (event.RequestType === "Delete") return { IsComplete: true };
  const p = event.ResourceProperties;
  const out = await ecs.send(new DescribeTasksCommand({ cluster: p.Cluster, tasks: [event.PhysicalResourceId] }));
  const task = out.tasks && out.tasks[0];
  if (!task) throw new Error("migration task " + event.PhysicalResourceId + " not found");
  if (task.lastStatus !== "STOPPED") return { IsComplete: false };
  const c = (task.containers || []).find((x) => x.name === p.Container);
  if (!c || c.exitCode !== 0) {
    throw new Error("migration task " + task.taskArn + " failed (exit code " + (c && c.exitCode) + ", " +
      (task.stoppedReason || (c && c.reason) || "no reason") + "); its output is in log group " + p.LogGroup);
  }
  return { IsComplete: true };
};
`;

/**
 * Applies the Prisma migrations with a one-off Fargate task during `cdk deploy`, before any
 * service starts or rolls to a new image (the services depend on this resource).
 *
 * A custom resource rather than a documented manual step: the first deploy would otherwise
 * start services against an empty database, and a later deploy could roll out code that
 * expects a column the database does not have yet. The task definition's ARN is a property
 * of the resource, so every new image or setting runs the migrations again;
 * `prisma migrate deploy` is idempotent, so re-running applies only what is missing. A
 * failed migration fails the deployment and CloudFormation rolls the services back.
 */
export class Migration extends Construct {
  public readonly taskDefinition: ecs.FargateTaskDefinition;
  public readonly resource: CustomResource;
  public readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: MigrationProps) {
    super(scope, id);
    ({ taskDefinition: this.taskDefinition, logGroup: this.logGroup } = oneOffTask(this, { cpu: 256, memoryLimitMiB: 512, logRetentionDays: props.logRetentionDays }));
    const container = this.taskDefinition.addContainer("migrate", {
      image: props.image,
      environment: props.environment,
      secrets: props.secrets,
      logging: ecs.LogDrivers.awsLogs({ logGroup: this.logGroup, streamPrefix: "migrate" }),
      essential: true,
    });

    acknowledge(
      this.taskDefinition,
      "ECS2",
      "Environment variables hold only the database host, port and name; the credentials come from Secrets Manager as container secrets.",
    );
    acknowledge(
      this.taskDefinition,
      "IAM5[Resource::*]",
      "The execution role's ecr:GetAuthorizationToken has no resource-level permissions and requires Resource *.",
    );
    const stack = Stack.of(this);
    const handlerRole = new iam.Role(this, "HandlerRole", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: "Runs the docpipe migration task and waits for it",
    });
    const handlerLogs = new logs.LogGroup(this, "HandlerLogs", {
      retention: props.logRetentionDays as logs.RetentionDays,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    handlerLogs.grantWrite(handlerRole);
    handlerRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ["ecs:RunTask"],
        resources: [this.taskDefinition.taskDefinitionArn],
        conditions: { ArnEquals: { "ecs:cluster": props.cluster.clusterArn } },
      }),
    );
    handlerRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ["ecs:DescribeTasks"],
        resources: [stack.formatArn({ service: "ecs", resource: "task", resourceName: `${props.cluster.clusterName}/*` })],
      }),
    );
    const passRoles = [this.taskDefinition.taskRole.roleArn, this.taskDefinition.obtainExecutionRole().roleArn];
    handlerRole.addToPolicy(new iam.PolicyStatement({ actions: ["iam:PassRole"], resources: passRoles }));

    const fn = (name: string, handler: string): lambda.Function =>
      new lambda.Function(this, name, {
        runtime: lambda.Runtime.NODEJS_24_X,
        handler,
        code: lambda.Code.fromInline(handlerCode),
        role: handlerRole,
        logGroup: handlerLogs,
        timeout: Duration.seconds(30),
      });
    const onEvent = fn("OnEvent", "index.onEvent");
    const isComplete = fn("IsComplete", "index.isComplete");
    const provider = new cr.Provider(this, "Provider", {
      onEventHandler: onEvent,
      isCompleteHandler: isComplete,
      queryInterval: Duration.seconds(15),
      totalTimeout: Duration.minutes(30),
      logGroup: handlerLogs,
      disableWaiterStateMachineLogging: false,
      waiterStateMachineLogOptions: {
        destination: new logs.LogGroup(this, "WaiterLogs", {
          retention: props.logRetentionDays as logs.RetentionDays,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
        level: sfn.LogLevel.ALL,
      },
    });
    const taskArns = stack.formatArn({ service: "ecs", resource: "task", resourceName: `${props.cluster.clusterName}/*` });
    acknowledgeWildcardResource(
      handlerRole,
      taskArns,
      "DescribeTasks on the migration task, whose id exists only after RunTask; scoped to this cluster.",
    );
    acknowledge(
      provider,
      "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
      "The CDK provider framework's own functions use the AWS managed basic execution role (CloudWatch Logs only); it is not configurable.",
    );
    for (const f of [onEvent, isComplete]) {
      acknowledgeWildcardResource(
        provider,
        `${f.functionArn}:*`,
        "The CDK provider framework invokes any version of the handler function it was given; generated by the framework.",
      );
    }
    for (const id of ["framework-isComplete", "framework-onTimeout"]) {
      const fn = provider.node.findChild(id) as lambda.Function;
      acknowledgeWildcardResource(
        provider,
        `${fn.functionArn}:*`,
        "The provider framework's waiter state machine invokes any version of the framework functions; generated by the framework.",
      );
    }
    acknowledge(
      provider,
      "IAM5[Resource::*]",
      "The waiter state machine's CloudWatch Logs delivery actions (logs:CreateLogDelivery and friends) support only Resource *.",
    );
    acknowledge(
      provider,
      "SF2",
      "The waiter state machine only polls the migration task every 15 seconds during a deploy; X-Ray traces would add cost and no insight. Its executions are logged.",
    );
    const subnets = props.cluster.vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }).subnetIds;
    this.resource = new CustomResource(this, "Run", {
      serviceToken: provider.serviceToken,
      resourceType: "Custom::DocpipeMigration",
      properties: {
        Cluster: props.cluster.clusterArn,
        TaskDefinition: this.taskDefinition.taskDefinitionArn,
        Container: container.containerName,
        Subnets: subnets,
        SecurityGroups: [props.securityGroup.securityGroupId],
        LogGroup: this.logGroup.logGroupName,
      },
    });
  }
}
