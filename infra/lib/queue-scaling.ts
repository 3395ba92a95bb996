import {
  aws_applicationautoscaling as appscaling,
  aws_cloudwatch as cw,
  aws_cloudwatch_actions as cwActions,
  aws_iam as iam,
  Duration,
  Stack,
} from "aws-cdk-lib";
import type { aws_ecs as ecs, aws_sqs as sqs } from "aws-cdk-lib";
import { Construct } from "constructs";

export interface QueueScalingProps {
  readonly cluster: ecs.ICluster;
  readonly service: ecs.FargateService;
  /** The queues the service consumes; their backlogs add up (the failsafe drains every DLQ). */
  readonly queues: readonly sqs.IQueue[];
  readonly minTasks: number;
  readonly maxTasks: number;
  /** Visible messages one task may have waiting for it; see {@link targetBacklogPerTask}. */
  readonly targetBacklogPerTask: number;
  /** Minutes a queue must have nothing visible (or in flight, see `protectedJobs`) before the service goes to zero. @defaultValue 15 */
  readonly idleMinutes?: number;
  /**
   * The service's tasks hold ECS scale-in protection while they work (jobs that outlast the 120 s
   * stop timeout): scale-in cannot stop a busy task, so the idle alarm needs only the visible
   * messages, not the in-flight ones too. That keeps it within CloudWatch's 10 metrics per alarm
   * for the failsafe, which reads five queues. @defaultValue false
   */
  readonly protectedJobs?: boolean;
}

/** CloudWatch's limit of metrics in one alarm (and in one target-tracking metric specification). */
export const MAX_METRICS_PER_ALARM = 10;

/**
 * The backlog one task can clear within the acceptable latency: a task finishes
 * `concurrency / secondsPerMessage` messages a second, so it can have that many times
 * `latency` messages waiting and still meet the goal.
 */
export function targetBacklogPerTask(opts: {
  concurrency: number;
  secondsPerMessage: number;
  acceptableLatencySeconds: number;
}): number {
  return Math.max(1, Math.round((opts.concurrency * opts.acceptableLatencySeconds) / opts.secondsPerMessage));
}

const minute = Duration.minutes(1);

/**
 * Application Auto Scaling scales ECS services with its service-linked role (created in the
 * account on first use), as `autoScaleTaskCount` does. Left unset, `ScalableTarget` would make a
 * new role with no policy at all, which cannot change a service's desired count.
 */
export function ecsScalingRole(scope: Construct): iam.IRole {
  return iam.Role.fromRoleArn(
    scope,
    "ServiceLinkedRole",
    Stack.of(scope).formatArn({
      region: "",
      service: "iam",
      resource: "role/aws-service-role/ecs.application-autoscaling.amazonaws.com",
      resourceName: "AWSServiceRoleForApplicationAutoScaling_ECSService",
    }),
  );
}

/**
 * Scales a queue worker on its backlog per task, to zero when idle and back on the first message.
 *
 * - Target tracking on `visible / running tasks` (metric math). CDK's L2
 *   `scaleToTrackCustomMetric` rejects a MathExpression, but CloudFormation accepts metric
 *   math in `CustomizedMetricSpecification.Metrics`, so this is an L1 `CfnScalingPolicy`.
 * - Target tracking multiplies the current task count, so from zero tasks it can never scale
 *   out: a step policy adds one task when messages are visible and no task is running, and
 *   target tracking takes over once that task reports.
 * - A step policy sets the count to zero after `idleMinutes` with nothing visible *and*
 *   nothing in flight, so scale-to-zero never lands while a message is being worked on; for a
 *   service whose busy tasks hold scale-in protection, nothing visible is enough.
 */
export class QueueScaling extends Construct {
  public readonly target: appscaling.ScalableTarget;
  public readonly backlogPolicy: appscaling.CfnScalingPolicy;
  public readonly wakeAlarm: cw.Alarm;
  public readonly idleAlarm?: cw.Alarm;

  constructor(scope: Construct, id: string, props: QueueScalingProps) {
    super(scope, id);
    const { cluster, service } = props;
    this.target = new appscaling.ScalableTarget(this, "Target", {
      serviceNamespace: appscaling.ServiceNamespace.ECS,
      resourceId: `service/${cluster.clusterName}/${service.serviceName}`,
      scalableDimension: "ecs:service:DesiredCount",
      minCapacity: props.minTasks,
      maxCapacity: props.maxTasks,
      role: ecsScalingRole(this),
    });
    // The scalable target must not exist before the service does.
    this.target.node.addDependency(service);

    const queueNames = props.queues.map((q) => q.queueName);
    // Target tracking reads the visible counts and the running tasks; the idle alarm the visible
    // counts, and the in-flight ones unless busy tasks are protected.
    const idleMetrics = queueNames.length * (props.protectedJobs ? 1 : 2);
    if (queueNames.length + 1 > MAX_METRICS_PER_ALARM || idleMetrics > MAX_METRICS_PER_ALARM) {
      throw new Error(
        `${id}: ${queueNames.length} queues need ${Math.max(queueNames.length + 1, idleMetrics)} metrics in one alarm; CloudWatch allows ${MAX_METRICS_PER_ALARM}`,
      );
    }
    const visibleIds = queueNames.map((_, i) => `visible${i}`);
    // An inactive queue publishes no datapoints; FILL makes it count as empty instead of
    // making the whole sum missing.
    const visibleSum = visibleIds.map((v) => `FILL(${v}, 0)`).join(" + ");
    const running = "FILL(running, 0)";

    this.backlogPolicy = new appscaling.CfnScalingPolicy(this, "BacklogPerTask", {
      policyName: `${id}-backlog-per-task`,
      policyType: "TargetTrackingScaling",
      scalingTargetId: this.target.scalableTargetId,
      targetTrackingScalingPolicyConfiguration: {
        targetValue: props.targetBacklogPerTask,
        scaleOutCooldown: 60,
        // Slow to give tasks back: a new task costs a cold start, an idle one a minute of Fargate.
        scaleInCooldown: 300,
        disableScaleIn: false,
        customizedMetricSpecification: {
          metrics: [
            ...queueNames.map((queueName, i) => ({
              id: visibleIds[i],
              returnData: false,
              metricStat: {
                metric: {
                  namespace: "AWS/SQS",
                  metricName: "ApproximateNumberOfMessagesVisible",
                  dimensions: [{ name: "QueueName", value: queueName }],
                },
                stat: "Average",
              },
            })),
            {
              id: "running",
              returnData: false,
              metricStat: {
                metric: {
                  namespace: "ECS/ContainerInsights",
                  metricName: "RunningTaskCount",
                  dimensions: [
                    { name: "ClusterName", value: cluster.clusterName },
                    { name: "ServiceName", value: service.serviceName },
                  ],
                },
                stat: "Average",
              },
            },
            {
              id: "backlogPerTask",
              label: "Visible messages per running task",
              // Never divide by zero: with no task running the backlog counts whole, and the
              // wake policy below starts the first task.
              expression: `(${visibleSum}) / IF(${running} >= 1, ${running}, 1)`,
              returnData: true,
            },
          ],
        },
      },
    });

    const runningMetric = new cw.Metric({
      namespace: "ECS/ContainerInsights",
      metricName: "RunningTaskCount",
      dimensionsMap: { ClusterName: cluster.clusterName, ServiceName: service.serviceName },
      statistic: "Average",
      period: minute,
    });
    const visibleMetrics = Object.fromEntries(
      props.queues.map((q, i) => [visibleIds[i], q.metricApproximateNumberOfMessagesVisible({ period: minute, statistic: "Maximum" })]),
    );
    const inFlightIds = queueNames.map((_, i) => `inflight${i}`);
    const inFlightMetrics = Object.fromEntries(
      props.queues.map((q, i) => [inFlightIds[i], q.metricApproximateNumberOfMessagesNotVisible({ period: minute, statistic: "Maximum" })]),
    );

    const wake = new appscaling.StepScalingAction(this, "WakeFromZero", {
      scalingTarget: this.target,
      adjustmentType: appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
      cooldown: minute,
      metricAggregationType: appscaling.MetricAggregationType.MAXIMUM,
    });
    wake.addAdjustment({ lowerBound: 0, adjustment: 1 });
    this.wakeAlarm = new cw.Alarm(this, "WakeAlarm", {
      alarmDescription: `Messages are waiting and ${id} has no running task: start one`,
      metric: new cw.MathExpression({
        expression: `IF((${visibleSum}) > 0 AND ${running} < 1, 1, 0)`,
        usingMetrics: { ...visibleMetrics, running: runningMetric },
        period: minute,
        label: "Backlog with no running task",
      }),
      threshold: 1,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
    });
    this.wakeAlarm.addAlarmAction(new cwActions.ApplicationScalingAction(wake));

    if (props.minTasks === 0) {
      const idleMinutes = props.idleMinutes ?? 15;
      const idle = new appscaling.StepScalingAction(this, "ScaleToZero", {
        scalingTarget: this.target,
        adjustmentType: appscaling.AdjustmentType.EXACT_CAPACITY,
        cooldown: minute,
        metricAggregationType: appscaling.MetricAggregationType.MAXIMUM,
      });
      idle.addAdjustment({ upperBound: 0, adjustment: 0 });
      const inFlightSum = inFlightIds.map((v) => `FILL(${v}, 0)`).join(" + ");
      const what = props.protectedJobs ? "nothing visible" : "nothing visible or in flight";
      this.idleAlarm = new cw.Alarm(this, "IdleAlarm", {
        alarmDescription: `${id}'s queues have had ${what} for ${idleMinutes} minutes: scale to zero`,
        metric: new cw.MathExpression({
          expression: props.protectedJobs ? visibleSum : `${visibleSum} + ${inFlightSum}`,
          usingMetrics: props.protectedJobs ? visibleMetrics : { ...visibleMetrics, ...inFlightMetrics },
          period: minute,
          label: props.protectedJobs ? "Visible messages" : "Visible plus in-flight messages",
        }),
        threshold: 0,
        comparisonOperator: cw.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: idleMinutes,
        datapointsToAlarm: idleMinutes,
        // SQS stops publishing metrics for a queue that has been inactive for hours: that is idle.
        treatMissingData: cw.TreatMissingData.BREACHING,
      });
      this.idleAlarm.addAlarmAction(new cwActions.ApplicationScalingAction(idle));
    }
  }
}
