import {
  aws_cloudwatch as cw,
  aws_cloudwatch_actions as cwActions,
  aws_elasticloadbalancingv2 as elbv2,
  aws_iam as iam,
  aws_kms as kms,
  aws_logs as logs,
  aws_sns as sns,
  aws_sns_subscriptions as subs,
  Duration,
} from "aws-cdk-lib";
import type { aws_ecs as ecs } from "aws-cdk-lib";
import { Construct } from "constructs";
import type { ServiceId } from "./config.js";
import type { Database } from "./database.js";
import { serviceMetricAlarms, serviceMetricWidgets } from "./service-metrics.js";
import type { PipelineService } from "./pipeline-service.js";
import type { Queues } from "./queues.js";

export interface MonitoringProps {
  readonly queues: Queues;
  readonly cluster: ecs.ICluster;
  readonly services: Readonly<Record<ServiceId, PipelineService>>;
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly alarmEmail?: string;
  /** Alarm when a queue's oldest message is older than this. */
  readonly maxMessageAgeSeconds: number;
  /** Error log lines per service in five minutes that raise an alarm. @defaultValue 10 */
  readonly errorThreshold?: number;
  readonly database: Database;
  /** The cluster's maximum ACUs: the capacity alarm's threshold, and what max_connections follows. */
  readonly databaseMaxCapacity: number;
}

/** Namespace of the error counts the log metric filters publish. */
export const ERROR_NAMESPACE = "Docpipe/Errors";

const minute = Duration.minutes(1);
const fiveMinutes = Duration.minutes(5);

/**
 * Alarms to one SNS topic (every DLQ not empty, every queue's oldest message too old, error
 * logs per service, load balancer 5xx) and a dashboard of queue depth and age, running
 * tasks, pages per minute and errors per stage.
 */
export class Monitoring extends Construct {
  public readonly topic: sns.Topic;
  public readonly dashboard: cw.Dashboard;
  public readonly dlqAlarms: readonly cw.Alarm[];
  public readonly ageAlarms: readonly cw.Alarm[];
  public readonly errorAlarms: readonly cw.Alarm[];
  public readonly databaseAlarms: readonly cw.Alarm[];
  /** On the services' own metrics (EMF): the model's breaker held open, stalled batches. */
  public readonly serviceAlarms: readonly cw.Alarm[];

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const key = new kms.Key(this, "TopicKey", {
      description: "docpipe alarm topic",
      enableKeyRotation: true,
    });
    // CloudWatch publishes alarm notifications into the encrypted topic.
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions: ["kms:Decrypt", "kms:GenerateDataKey*"],
        resources: ["*"],
      }),
    );
    this.topic = new sns.Topic(this, "Alarms", {
      displayName: "docpipe alarms",
      masterKey: key,
      enforceSSL: true,
    });
    if (props.alarmEmail) this.topic.addSubscription(new subs.EmailSubscription(props.alarmEmail));
    const notify = new cwActions.SnsAction(this.topic);
    const alarm = (a: cw.Alarm): cw.Alarm => {
      a.addAlarmAction(notify);
      a.addOkAction(notify);
      return a;
    };

    const queues = props.queues.all;
    this.dlqAlarms = queues.map((q) =>
      alarm(
        new cw.Alarm(this, `${q.key}-dlq-not-empty`, {
          alarmDescription: `Messages in ${q.spec.name}'s dead-letter queue: the failsafe is draining them; check its logs and the audit records if it does not`,
          metric: q.dlq.metricApproximateNumberOfMessagesVisible({ period: minute, statistic: "Maximum" }),
          threshold: 0,
          comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cw.TreatMissingData.NOT_BREACHING,
        }),
      ),
    );
    this.ageAlarms = queues.map((q) =>
      alarm(
        new cw.Alarm(this, `${q.key}-oldest-message`, {
          alarmDescription: `A message has waited in ${q.spec.name} for over ${props.maxMessageAgeSeconds} s: its workers are stuck, failing or at their task maximum`,
          metric: q.queue.metricApproximateAgeOfOldestMessage({ period: minute, statistic: "Maximum" }),
          threshold: props.maxMessageAgeSeconds,
          comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
          evaluationPeriods: 5,
          treatMissingData: cw.TreatMissingData.NOT_BREACHING,
        }),
      ),
    );

    // pino writes one JSON object per line; level 50 is error, 60 fatal. Counting from the
    // logs keeps the services free of a metrics client.
    const errorMetrics = Object.fromEntries(
      Object.entries(props.services).map(([serviceId, svc]) => {
        new logs.MetricFilter(this, `${serviceId}-errors`, {
          logGroup: svc.logGroup,
          filterPattern: logs.FilterPattern.numberValue("$.level", ">=", 50),
          metricNamespace: ERROR_NAMESPACE,
          metricName: serviceId,
          metricValue: "1",
          defaultValue: 0,
        });
        return [
          serviceId,
          new cw.Metric({ namespace: ERROR_NAMESPACE, metricName: serviceId, statistic: "Sum", period: fiveMinutes }),
        ];
      }),
    ) as Record<ServiceId, cw.Metric>;
    const threshold = props.errorThreshold ?? 10;
    this.errorAlarms = Object.entries(errorMetrics).map(([serviceId, metric]) =>
      alarm(
        new cw.Alarm(this, `${serviceId}-error-logs`, {
          alarmDescription: `${serviceId} logged ${threshold} or more errors in five minutes`,
          metric,
          threshold,
          comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cw.TreatMissingData.NOT_BREACHING,
        }),
      ),
    );
    alarm(
      new cw.Alarm(this, "ingestion-5xx", {
        alarmDescription: "The ingestion API answered with 5xx errors",
        metric: props.loadBalancer.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, {
          period: fiveMinutes,
          statistic: "Sum",
        }),
        threshold: 5,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cw.TreatMissingData.NOT_BREACHING,
      }),
    );

    this.databaseAlarms = databaseAlarms(this, props.database, props.databaseMaxCapacity).map(alarm);
    this.serviceAlarms = serviceMetricAlarms(this).map(alarm);

    const running = (serviceId: ServiceId): cw.Metric =>
      new cw.Metric({
        namespace: "ECS/ContainerInsights",
        metricName: "RunningTaskCount",
        dimensionsMap: { ClusterName: props.cluster.clusterName, ServiceName: props.services[serviceId].service.serviceName },
        statistic: "Average",
        period: minute,
        label: serviceId,
      });
    // Every page passes the single-page queue once (rendered) and the converted-image queue
    // once (scored); a deleted message is a finished page, counted by SQS for free.
    const pagesRendered = props.queues.byKey.singlePage.queue.metricNumberOfMessagesDeleted({
      period: minute,
      statistic: "Sum",
      label: "pages rendered / min",
    });
    const pagesScored = props.queues.byKey.convertedImage.queue.metricNumberOfMessagesDeleted({
      period: minute,
      statistic: "Sum",
      label: "pages scored / min",
    });

    this.dashboard = new cw.Dashboard(this, "Dashboard", {
      defaultInterval: Duration.hours(3),
      widgets: [
        [
          new cw.GraphWidget({
            title: "Queue depth (visible)",
            width: 12,
            left: queues.map((q) =>
              q.queue.metricApproximateNumberOfMessagesVisible({ period: minute, statistic: "Maximum", label: q.spec.name }),
            ),
          }),
          new cw.GraphWidget({
            title: "Age of oldest message (s)",
            width: 12,
            left: queues.map((q) =>
              q.queue.metricApproximateAgeOfOldestMessage({ period: minute, statistic: "Maximum", label: q.spec.name }),
            ),
          }),
        ],
        [
          new cw.GraphWidget({
            title: "Running tasks",
            width: 12,
            left: (Object.keys(props.services) as ServiceId[]).map(running),
          }),
          new cw.GraphWidget({ title: "Pages per minute", width: 12, left: [pagesRendered, pagesScored] }),
        ],
        [
          new cw.GraphWidget({
            title: "Errors per stage (error log lines / 5 min)",
            width: 12,
            left: Object.entries(errorMetrics).map(([serviceId, m]) => m.with({ label: serviceId })),
          }),
          new cw.GraphWidget({
            title: "Dead-letter queues (visible)",
            width: 12,
            left: queues.map((q) =>
              q.dlq.metricApproximateNumberOfMessagesVisible({ period: minute, statistic: "Maximum", label: `${q.spec.name}-dlq` }),
            ),
          }),
        ],
        ...serviceMetricWidgets((Object.keys(props.services) as ServiceId[]).filter((id) => id !== "ingestion")),
        [
          new cw.AlarmStatusWidget({
            title: "Alarms",
            width: 24,
            alarms: [...this.dlqAlarms, ...this.ageAlarms, ...this.errorAlarms, ...this.databaseAlarms, ...this.serviceAlarms],
          }),
        ],
      ],
    });
  }
}

/**
 * Aurora Serverless v2's max_connections follows the cluster's maximum capacity:
 * LEAST(DBInstanceClassMemory / 9531392, 5000), with 2 GiB of memory per ACU.
 */
export function estimatedMaxConnections(maxCapacity: number): number {
  return Math.min(5000, Math.floor((maxCapacity * 2 * 1024 ** 3) / 9_531_392));
}

/** Sustained load on the database: CPU, capacity pinned at its maximum, connections near the limit. */
function databaseAlarms(scope: Construct, database: Database, maxCapacity: number): cw.Alarm[] {
  const sustained = { period: fiveMinutes, statistic: "Maximum" } as const;
  const fifteenMinutes = { evaluationPeriods: 3, datapointsToAlarm: 3, treatMissingData: cw.TreatMissingData.NOT_BREACHING } as const;
  const connections = Math.floor(0.8 * estimatedMaxConnections(maxCapacity));
  return [
    new cw.Alarm(scope, "database-cpu", {
      alarmDescription: "Aurora CPU has been at 80% or more for 15 minutes: raise databaseMaxCapacity or slow the stages that write",
      metric: database.cluster.metricCPUUtilization({ period: fiveMinutes, statistic: "Average" }),
      threshold: 80,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      ...fifteenMinutes,
    }),
    new cw.Alarm(scope, "database-capacity-at-max", {
      alarmDescription: `Aurora has run at its maximum of ${maxCapacity} ACUs for 15 minutes: it cannot grow further (databaseMaxCapacity)`,
      metric: database.cluster.metricServerlessDatabaseCapacity(sustained),
      threshold: maxCapacity,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      ...fifteenMinutes,
    }),
    new cw.Alarm(scope, "database-connections", {
      alarmDescription: `Aurora has held ${connections} or more connections (80% of about ${estimatedMaxConnections(maxCapacity)} at ${maxCapacity} ACUs) for 15 minutes: fewer tasks or smaller pools, or RDS Proxy`,
      metric: database.cluster.metricDatabaseConnections(sustained),
      threshold: connections,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      ...fifteenMinutes,
    }),
  ];
}
