import { describe, expect, it } from "vitest";
import { createMetrics, METRICS_NAMESPACE, metricUnits } from "./metrics.js";

/** CloudWatch's metric units (the EMF specification's Unit values). */
const CLOUDWATCH_UNITS = new Set([
  "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes", "Bits", "Kilobits",
  "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
  "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
  "Terabits/Second", "Count/Second", "None",
]);

/** Checks one line against the EMF specification's rules; returns the metrics it carries. */
function readEmf(line: string): Record<string, number | number[]> {
  const doc = JSON.parse(line) as Record<string, unknown> & { _aws: { Timestamp: unknown; CloudWatchMetrics: unknown } };
  expect(Number.isInteger(doc._aws.Timestamp)).toBe(true);
  const directives = doc._aws.CloudWatchMetrics as { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[];
  expect(directives).toHaveLength(1);
  const [d] = directives;
  expect(d!.Namespace).toBe(METRICS_NAMESPACE);
  for (const set of d!.Dimensions) for (const dim of set) expect(typeof doc[dim], dim).toBe("string");
  expect(d!.Metrics.length).toBeLessThanOrEqual(100);
  const out: Record<string, number | number[]> = {};
  for (const m of d!.Metrics) {
    expect(CLOUDWATCH_UNITS.has(m.Unit), m.Unit).toBe(true);
    const v = doc[m.Name] as number | number[];
    if (Array.isArray(v)) {
      expect(v.length).toBeGreaterThan(0);
      expect(v.length).toBeLessThanOrEqual(100);
      for (const x of v) expect(Number.isFinite(x)).toBe(true);
    } else {
      expect(Number.isFinite(v), m.Name).toBe(true);
    }
    out[m.Name] = v;
  }
  return out;
}

describe("EMF metrics", () => {
  it("declares only CloudWatch units", () => {
    for (const [name, unit] of Object.entries(metricUnits)) expect(CLOUDWATCH_UNITS.has(unit), name).toBe(true);
  });

  it("sums counts, keeps every value and samples gauges, per service, once per flush", () => {
    const lines: string[] = [];
    let open = 1;
    const m = createMetrics({ service: "inference-client", write: (l) => lines.push(l), flushIntervalSeconds: 0, now: () => 1_767_000_000_000 });
    m.count("Pages");
    m.count("Pages", 2);
    m.count("ModelThrottled");
    m.record("ModelLatency", 120);
    m.record("ModelLatency", 80);
    m.gauge("BreakerOpen", () => open);
    m.flush();
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ Service: "inference-client", _aws: { Timestamp: 1_767_000_000_000 } });
    expect(readEmf(lines[0]!)).toEqual({ Pages: 3, ModelThrottled: 1, ModelLatency: [120, 80], BreakerOpen: 1 });

    // Counts and values start again; gauges are read again.
    open = 0;
    m.flush();
    expect(readEmf(lines[1]!)).toEqual({ BreakerOpen: 0 });
  });

  it("writes nothing when nothing happened, and splits more than 100 values over several lines", () => {
    const lines: string[] = [];
    const m = createMetrics({ service: "page-converter", write: (l) => lines.push(l), flushIntervalSeconds: 0 });
    m.flush();
    expect(lines).toEqual([]);
    for (let i = 0; i < 250; i++) m.record("StageDuration", i);
    m.count("MessagesSucceeded", 250);
    m.close();
    const docs = lines.map(readEmf);
    expect(docs.map((d) => (d.StageDuration as number[]).length)).toEqual([100, 100, 50]);
    expect(docs.flatMap((d) => d.StageDuration as number[])).toEqual(Array.from({ length: 250 }, (_, i) => i));
    expect(docs.map((d) => d.MessagesSucceeded)).toEqual([250, undefined, undefined]);
  });

  it("flushes by itself on its interval", async () => {
    const lines: string[] = [];
    const m = createMetrics({ service: "splitter-small", write: (l) => lines.push(l), flushIntervalSeconds: 0.05 });
    m.count("Pages", 10);
    await new Promise((r) => setTimeout(r, 120));
    m.close();
    expect(lines.map(readEmf)).toEqual([{ Pages: 10 }]);
  });
});
