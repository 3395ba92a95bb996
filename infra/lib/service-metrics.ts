import { aws_cloudwatch as cw, Duration } from "aws-cdk-lib";
import type { Construct } from "constructs";
import { METRICS_NAMESPACE, type MetricName } from "@docpipe/queue";
import type { ServiceId } from "./config.js";

// The services' own metrics (EMF lines on stdout, see packages/queue/src/metrics.ts): namespace
// Docpipe, one dimension, Service, whose value is the ServiceId.

const minute = Duration.minutes(1);
const fiveMinutes = Duration.minutes(5);

/** One of the services' metrics, for one service; a label only for graphs (an alarm's metric stays a plain one). */
export function serviceMetric(name: MetricName, service: ServiceId, opts: { statistic: string; period?: Duration; label?: string }): cw.Metric {
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
        width: 24,
        left: [
          serviceMetric("BreakerOpen", "inference-client", { statistic: "Maximum", label: "breaker open" }),
          serviceMetric("StalledBatches", "ingestion", { statistic: "Maximum", label: "stalled batches" }),
          ...(["page-converter", "failsafe"] as const).map((s) => serviceMetric("DegradedPages", s, { statistic: "Sum", label: `${s} degraded` })),
        ],
      }),
    ],
  ];
}

/** Alarms on the services' metrics: the model endpoint down (breaker held open), batches stalled. */
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
  ];
}
