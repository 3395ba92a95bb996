import { aws_ec2 as ec2, aws_ecs as ecs, aws_events as events, aws_events_targets as targets, aws_iam as iam, type aws_logs as logs, Duration, Stack } from "aws-cdk-lib";
import { Construct } from "constructs";
import { RECONCILED_QUEUES } from "@docpipe/queue";
import { acknowledge, acknowledgeWildcardResource } from "./nag.js";
import { oneOffTask, type OneOffTaskProps } from "./one-off-task.js";

/** The reconciler's container and `Service` metric dimension. */
export const RECONCILER_SERVICE = "reconciler";
/** Minutes between reconciler passes on AWS. */
export const RECONCILE_EVERY_MINUTES = 5;

/** `image`: services/reconciler's. */
export type ReconcilerTaskProps = OneOffTaskProps;

/**
 * The reconciler (services/reconciler) as a scheduled task: EventBridge runs one pass every
 * RECONCILE_EVERY_MINUTES on Fargate (RECONCILE_INTERVAL_SECONDS=0: the task exits after its pass).
 * A pass reads every watched queue's and DLQ's counts (GetQueueAttributes), keeps its drain marks
 * in the database, and re-sends the message of each unit whose message is gone; it needs no S3.
 * Its liveness is its EMF metric `ReconcilePasses`: the alarm (lib/service-metrics.ts) fires when
 * passes stop ending, whether a task failed to start, crashed, or its pass threw.
 */
export class ReconcilerTask extends Construct {
  public readonly taskDefinition: ecs.FargateTaskDefinition;
  public readonly logGroup: logs.LogGroup;
  public readonly schedule: events.Rule;

  constructor(scope: Construct, id: string, props: ReconcilerTaskProps) {
    super(scope, id);
    ({ taskDefinition: this.taskDefinition, logGroup: this.logGroup } = oneOffTask(this, { cpu: 256, memoryLimitMiB: 512, logRetentionDays: props.logRetentionDays }));
    this.taskDefinition.addContainer(RECONCILER_SERVICE, {
      image: props.image,
      environment: { ...props.environment, SERVICE_NAME: RECONCILER_SERVICE, RECONCILE_INTERVAL_SECONDS: "0" },
      secrets: props.secrets,
      logging: ecs.LogDrivers.awsLogs({ logGroup: this.logGroup, streamPrefix: RECONCILER_SERVICE }),
      // SIGTERM, then this long to end the pass under way (its sends are idempotent).
      stopTimeout: Duration.seconds(120),
      essential: true,
    });
    acknowledge(
      this.taskDefinition,
      "ECS2",
      "Environment variables hold only non-secret settings (database host, bucket and queue names); the database credentials come from Secrets Manager as container secrets.",
    );
    acknowledge(
      this.taskDefinition,
      "IAM5[Resource::*]",
      "The execution role's ecr:GetAuthorizationToken has no resource-level permissions and requires Resource *; image pulls and log writes are scoped by CDK to this repository and log group.",
    );

    const role = this.taskDefinition.taskRole;
    const watched = RECONCILED_QUEUES.map((k) => props.queues.byKey[k]);
    for (const q of watched) q.queue.grantSendMessages(role);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        // Drain marks: visible, in-flight and delayed counts and CreatedTimestamp of each queue and its DLQ.
        actions: ["sqs:GetQueueAttributes"],
        resources: watched.flatMap((q) => [q.queue.queueArn, q.dlq.queueArn]),
      }),
    );
    // resolveQueueUrls looks up every catalog queue by name at start; a URL is not access.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ["sqs:GetQueueUrl"], resources: props.queues.all.flatMap((q) => [q.queue.queueArn, q.dlq.queueArn]) }),
    );

    this.schedule = new events.Rule(this, "Schedule", {
      description: `docpipe reconciler: one pass every ${RECONCILE_EVERY_MINUTES} minutes`,
      schedule: events.Schedule.rate(Duration.minutes(RECONCILE_EVERY_MINUTES)),
    });
    this.schedule.addTarget(
      new targets.EcsTask({
        cluster: props.cluster,
        taskDefinition: this.taskDefinition,
        taskCount: 1,
        subnetSelection: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
        securityGroups: [props.securityGroup],
        assignPublicIp: false,
        // A pass that outlives its slot (a huge backlog of lost units) delays the next one; two at
        // once would still be safe: each unit is taken by one statement that skips locked rows.
      }),
    );
    acknowledgeWildcardResource(
      this.taskDefinition,
      `arn:aws:ecs:${Stack.of(this).region}:*:task/${props.cluster.clusterName}/*`,
      "EventBridge's role tags the tasks it starts (ecs:TagResource); their ids exist only at run time, so the pattern is this cluster's tasks.",
    );
  }
}
