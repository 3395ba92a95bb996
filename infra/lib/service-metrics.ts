import { aws_cloudwatch as cw, Duration } from "aws-cdk-lib";
import type { Construct } from "constructs";
import { METRICS_NAMESPACE, type MetricName } from "@docpipe/queue";
import type { ServiceId } from "./config.js";
import { RECONCILE_EVERY_MINUTES, RECONCILER_SERVICE } from "./reconciler-task.js";

// The services' own metrics (EMF lines on stdout, see packages/queue/src/metrics.ts): namespace
// Docpipe, one dimension, Service, whose value is the ServiceId.

const minute = Duration.minutes(1);
const fiveMinutes = Duration.minutes(5);

/** One of the services' metrics, for one service; a label only for graphs (an alarm's metric stays a plain one). */
export function serviceMetric(name: MetricName, service: ServiceId | typeof RECONCILER_SERVICE, opts: { statistic: string; period?: Duration; label?: string }): cw.Metric {
  return new cw.Metric({
    namespace: METRICS_NAMESPACE,
    metricName: name,
    dimensionsMap: { Service: service },
    statistic: opts.statistic,
    period: opts.period ?? minute,
    ...(opts.label !== undefined && { label: opts.label }),
  });
}

/** The stages that finish pages, and count them. */
const pageStages: readonly ServiceId[] = ["splitter-small", "page-converter", "inference-client", "failsafe"];

/** Dashboard rows of the services' own metrics: pages and durations per stage, message outcomes, the model, stalls. */
export function serviceMetricWidgets(workers: readonly ServiceId[]): cw.IWidget[][] {
  return [
    [
      new cw.GraphWidget({
        title: "Pages finished per minute, per stage",
        width: 12,
        left: pageStages.map((s) => serviceMetric("Pages", s, { statistic: "Sum", label: s })),
      }),
      new cw.GraphWidget({
        title: "Time per message, p50 and p90 (ms)",
        width: 12,
        left: workers.flatMap((s) => [
          serviceMetric("StageDuration", s, { statistic: "p50", label: `${s} p50` }),
          serviceMetric("StageDuration", s, { statistic: "p90", label: `${s} p90` }),
        ]),
      }),
    ],
    [
      new cw.GraphWidget({
        title: "Messages succeeded, retried and dead-lettered (per 5 min)",
        width: 12,
        left: workers.flatMap((s) => [
          serviceMetric("MessagesSucceeded", s, { statistic: "Sum", period: fiveMinutes, label: `${s} succeeded` }),
          serviceMetric("MessagesRetried", s, { statistic: "Sum", period: fiveMinutes, label: `${s} retried` }),
          serviceMetric("MessagesDeadLettered", s, { statistic: "Sum", period: fiveMinutes, label: `${s} dead-lettered` }),
        ]),
      }),
      new cw.GraphWidget({
        title: "Model: latency p50 and p99 (ms); 429s and 5xx per minute",
        width: 12,
        left: [
          serviceMetric("ModelLatency", "inference-client", { statistic: "p50", label: "latency p50" }),
          serviceMetric("ModelLatency", "inference-client", { statistic: "p99", label: "latency p99" }),
        ],
        right: [
          serviceMetric("ModelThrottled", "inference-client", { statistic: "Sum", label: "429" }),
          serviceMetric("ModelServerErrors", "inference-client", { statistic: "Sum", label: "5xx" }),
        ],
      }),
    ],
    [
      new cw.GraphWidget({
        title: "Breaker open (1), stalled batches, degraded pages per minute",
        width: 12,
        left: [
          serviceMetric("BreakerOpen", "inference-client", { statistic: "Maximum", label: "breaker open" }),
          serviceMetric("StalledBatches", "ingestion", { statistic: "Maximum", label: "stalled batches" }),
          ...(["page-converter", "failsafe"] as const).map((s) => serviceMetric("DegradedPages", s, { statistic: "Sum", label: `${s} degraded` })),
        ],
      }),
      new cw.GraphWidget({
        title: "Reconciler: passes, and units whose message was lost, re-sent (per hour)",
        width: 12,
        left: [
          serviceMetric("ReconcilePasses", RECONCILER_SERVICE, { statistic: "Sum", period: Duration.hours(1), label: "passes" }),
          serviceMetric("UnitsReconciled", RECONCILER_SERVICE, { statistic: "Sum", period: Duration.hours(1), label: "units re-sent" }),
        ],
      }),
    ],
  ];
}

/** Alarms on the services' metrics: the model endpoint down (breaker held open), batches stalled, the reconciler stopped or re-sending. */
export function serviceMetricAlarms(scope: Construct): cw.Alarm[] {
  return [
    new cw.Alarm(scope, "model-breaker-open", {
      alarmDescription:
        "The inference client's circuit breaker has been open for 5 minutes: the model endpoint is down or refusing; pages wait (nothing is lost) until it answers",
      metric: serviceMetric("BreakerOpen", "inference-client", { statistic: "Maximum" }),
      threshold: 1,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 5,
      datapointsToAlarm: 5,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
    }),
    new cw.Alarm(scope, "stalled-batches", {
      alarmDescription:
        "A batch has made no progress past STALL_AFTER_SECONDS for 15 minutes: `docpipe status <batch>` names the stage where its documents wait",
      metric: serviceMetric("StalledBatches", "ingestion", { statistic: "Maximum", period: fiveMinutes }),
      threshold: 1,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
    }),
    // The reconciler's liveness: a pass ends every few minutes; none for three slots means its task
    // does not start, crashes, or its pass fails (logged), and lost messages stay lost meanwhile.
    new cw.Alarm(scope, "reconciler-stopped", {
      alarmDescription: `No reconciler pass ended in ${3 * RECONCILE_EVERY_MINUTES} minutes (one is scheduled every ${RECONCILE_EVERY_MINUTES}): see the reconciler's log group and the schedule's failed invocations`,
      metric: serviceMetric("ReconcilePasses", RECONCILER_SERVICE, { statistic: "Sum", period: Duration.minutes(3 * RECONCILE_EVERY_MINUTES) }),
      threshold: 1,
      comparisonOperator: cw.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cw.TreatMissingData.BREACHING,
    }),
    // Messages are not lost in normal operation: a purge, a message past its retention or a
    // mistaken redrive are. The reconciler has re-sent what they left behind; someone should know.
    new cw.Alarm(scope, "messages-lost", {
      alarmDescription:
        "The reconciler re-sent the message of units whose message was lost (a purged queue, a message past its retention, a redrive, a bug): nothing is lost, but find out why (the audit trail's `reconciled` records name the units)",
      metric: serviceMetric("UnitsReconciled", RECONCILER_SERVICE, { statistic: "Sum", period: fiveMinutes }),
      threshold: 1,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
    }),
  ];
}
