/**
 * The services' own CloudWatch metrics, written as embedded metric format (EMF) lines on stdout:
 * on ECS the awslogs driver ships each line to CloudWatch Logs, which turns it into metrics in
 * the `Docpipe` namespace with one dimension, `Service`. No agent, no PutMetricData permission.
 * The dashboard and alarms (infra/lib/monitoring.ts) read the names below.
 */

/** Namespace of every metric the services write. */
export const METRICS_NAMESPACE = "Docpipe";

/** Every metric a service writes, and its unit. */
export const metricUnits = {
  /** Pages a stage finished (rendered, split out, scored, broken down). */
  Pages: "Count",
  /** Pages drawn with damage warnings and kept, flagged degraded. */
  DegradedPages: "Count",
  /** Messages handled and acknowledged. */
  MessagesSucceeded: "Count",
  /** Messages given back to the queue to be retried. */
  MessagesRetried: "Count",
  /** Messages moved to the dead-letter queue (permanent errors, poison, retries exhausted). */
  MessagesDeadLettered: "Count",
  /** Time from receiving a message to its outcome, per message. */
  StageDuration: "Milliseconds",
  /** Time of one call to the model endpoint, per call. */
  ModelLatency: "Milliseconds",
  /** Model calls answered 429 (throttled). */
  ModelThrottled: "Count",
  /** Model calls answered 5xx. */
  ModelServerErrors: "Count",
  /** 1 while the inference client's circuit breaker is open (not closed), else 0; sampled every flush. */
  BreakerOpen: "None",
  /** Batches reported stalled (no progress past STALL_AFTER_SECONDS); sampled every flush. */
  StalledBatches: "Count",
  /** Reconciler passes ended (each pass counts 1, failed ones not): its alarm fires when they stop. */
  ReconcilePasses: "Count",
  /** Units whose message was lost and that the reconciler sent again. */
  UnitsReconciled: "Count",
} as const;

export type MetricName = keyof typeof metricUnits;

/** CloudWatch takes at most 100 values of one metric in one EMF document. */
const MAX_VALUES = 100;

export interface Metrics {
  /** Adds to a count, summed until the next flush. */
  count(name: MetricName, n?: number): void;
  /** Records one value (a duration); values are kept as they are, so CloudWatch computes percentiles. */
  record(name: MetricName, value: number): void;
  /** A level read at every flush (breaker open, stalled batches). */
  gauge(name: MetricName, read: () => number): void;
  /** Writes what was collected since the last flush, as one or more EMF lines. */
  flush(): void;
  /** Flushes and stops the timer. */
  close(): void;
}

export interface MetricsOptions {
  /** The `Service` dimension: the deployable, e.g. `page-converter` or `splitter-large`. */
  service: string;
  /** Where the lines go. @defaultValue stdout */
  write?: (line: string) => void;
  /** Seconds between flushes; 0 flushes only when asked. @defaultValue 60 */
  flushIntervalSeconds?: number;
  now?: () => number;
}

/** Metrics that go nowhere: the default of every option that takes a {@link Metrics}. */
export const noMetrics: Metrics = {
  count: () => undefined,
  record: () => undefined,
  gauge: () => undefined,
  flush: () => undefined,
  close: () => undefined,
};

export function createMetrics(opts: MetricsOptions): Metrics {
  const write = opts.write ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const now = opts.now ?? Date.now;
  const counts = new Map<MetricName, number>();
  const values = new Map<MetricName, number[]>();
  const gauges = new Map<MetricName, () => number>();

  const document = (fields: [MetricName, number | number[]][]): string =>
    JSON.stringify({
      _aws: {
        Timestamp: now(),
        CloudWatchMetrics: [
          {
            Namespace: METRICS_NAMESPACE,
            Dimensions: [["Service"]],
            Metrics: fields.map(([name]) => ({ Name: name, Unit: metricUnits[name] })),
          },
        ],
      },
      Service: opts.service,
      ...Object.fromEntries(fields),
    });

  const flush = (): void => {
    const fields: [MetricName, number | number[]][] = [...counts];
    for (const [name, read] of gauges) {
      const v = read();
      if (Number.isFinite(v)) fields.push([name, v]);
    }
    // The first (up to) 100 values of each recorded metric go with the counts; the rest follow in
    // further documents, so no line breaks CloudWatch's limit.
    const pending: [MetricName, number[]][] = [...values].map(([name, vs]) => [name, [...vs]]);
    counts.clear();
    values.clear();
    for (;;) {
      for (const [name, vs] of pending) if (vs.length > 0) fields.push([name, vs.splice(0, MAX_VALUES)]);
      if (fields.length === 0) return;
      write(document(fields));
      fields.length = 0;
    }
  };

  const interval = (opts.flushIntervalSeconds ?? 60) * 1000;
  const timer = interval > 0 ? setInterval(flush, interval) : undefined;
  timer?.unref();

  return {
    count(name, n = 1) {
      counts.set(name, (counts.get(name) ?? 0) + n);
    },
    record(name, value) {
      const vs = values.get(name) ?? [];
      vs.push(value);
      values.set(name, vs);
    },
    gauge(name, read) {
      gauges.set(name, read);
    },
    flush,
    close() {
      clearInterval(timer);
      flush();
    },
  };
}
