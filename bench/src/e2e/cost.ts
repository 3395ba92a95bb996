// What a million pages cost on Fargate at list prices, per stage, from the figures of the run with
// one process per service: each stage's task (infra defaultSizes) is billed for its vCPU and memory
// for as long as it runs, so a stage needs at least the task-hours that its CPU per page fills, and
// at least those that its pages' time in the stage fills at the task's concurrency.
import { defaultSizes, type ServiceId } from "../../../infra/lib/config.ts";
import { defaults as converterDefaults } from "../../../services/page-converter/src/defaults.ts";
import { table } from "../common.ts";
import type { ProcessRun } from "./processes.ts";

/** AWS Fargate on-demand list prices, Linux/x86, us-east-1, as of 2026-11-30. */
export const FARGATE_PRICE = { region: "us-east-1", date: "2026-11-30", perVcpuHour: 0.04048, perGbHour: 0.004445 } as const;

/** The audit stages whose durations are a service's time in stage. */
const AUDIT_STAGES: Partial<Record<ServiceId, string>> = {
  "chunking-orchestrator": "classify",
  "splitter-large": "split-large",
  "splitter-small": "split-small",
  "page-converter": "convert",
  "inference-client": "inference",
};

export interface StageCost {
  service: ServiceId;
  cpuMsPerPage: number;
  wallMsPerPage?: number;
  vcpu: number;
  memoryGb: number;
  concurrency: number;
  bound: "CPU" | "wall";
  taskHoursPerMillion: number;
  vcpuHoursPerMillion: number;
  usdPerMillion: number;
}

export function stageCosts(p: ProcessRun): StageCost[] {
  const out: StageCost[] = [];
  for (const x of p.processes) {
    if (!x.task) continue;
    const service = x.task as ServiceId;
    const size = defaultSizes[service];
    const vcpu = size.cpu / 1024;
    const memoryGb = size.memoryMiB / 1024;
    const cpuSecondsPerPage = x.cpuSeconds / p.pages;
    const stage = AUDIT_STAGES[service];
    const wallSecondsPerPage = stage === undefined ? undefined : p.stageWallSecondsPerPage[stage];
    // The converter holds pagesPerRenderThread pages per render thread (one per vCPU); the others their catalog concurrency.
    const concurrency = service === "page-converter" ? converterDefaults.pagesPerRenderThread * Math.max(1, Math.round(vcpu)) : size.concurrency;
    const cpuHours = (1e6 * cpuSecondsPerPage) / vcpu / 3600;
    const wallHours = wallSecondsPerPage === undefined ? 0 : (1e6 * wallSecondsPerPage) / concurrency / 3600;
    const taskHoursPerMillion = Math.max(cpuHours, wallHours);
    out.push({
      service,
      cpuMsPerPage: 1000 * cpuSecondsPerPage,
      ...(wallSecondsPerPage !== undefined && { wallMsPerPage: 1000 * wallSecondsPerPage }),
      vcpu,
      memoryGb,
      concurrency,
      bound: wallHours > cpuHours ? "wall" : "CPU",
      taskHoursPerMillion,
      vcpuHoursPerMillion: taskHoursPerMillion * vcpu,
      usdPerMillion: taskHoursPerMillion * (vcpu * FARGATE_PRICE.perVcpuHour + memoryGb * FARGATE_PRICE.perGbHour),
    });
  }
  return out;
}

export function printCosts(p: ProcessRun): StageCost[] {
  const costs = stageCosts(p);
  const f = (x: number, d = 2) => x.toFixed(d);
  const rows: (string | number)[][] = [
    ["service", "CPU-ms/page", "in stage ms/page", "task vCPU / GB", "concurrency", "bound by", "task-h / 1M pages", "vCPU-h / 1M pages", "USD / 1M pages"],
  ];
  for (const c of costs) {
    rows.push([c.service, f(c.cpuMsPerPage), c.wallMsPerPage === undefined ? "" : f(c.wallMsPerPage, 0), `${c.vcpu} / ${c.memoryGb}`, c.concurrency,
      c.bound, f(c.taskHoursPerMillion, 1), f(c.vcpuHoursPerMillion, 1), f(c.usdPerMillion)]);
  }
  const sum = (k: "vcpuHoursPerMillion" | "usdPerMillion" | "taskHoursPerMillion") => costs.reduce((s, c) => s + c[k], 0);
  rows.push(["Fargate total", "", "", "", "", "", f(sum("taskHoursPerMillion"), 1), f(sum("vcpuHoursPerMillion"), 1), f(sum("usdPerMillion"))]);
  const db = (1e6 * p.postgresCpuSeconds) / p.pages / 3600;
  rows.push(["database (Aurora, not Fargate)", f((1000 * p.postgresCpuSeconds) / p.pages), "", "", "", "CPU", "", f(db, 1), ""]);
  const P = FARGATE_PRICE;
  console.log(`\nFargate cost per million pages at list prices (on-demand, Linux/x86, ${P.region}, ${P.date}: ` +
    `${P.perVcpuHour} USD per vCPU-hour, ${P.perGbHour} USD per GB-hour), default task sizes (infra/lib/config.ts):`);
  table(rows);
  console.log("(a task is billed while it runs: task-hours = the larger of CPU-s per page over its vCPUs and time in stage over its " +
    "concurrency; no idle or scale-in time, no Spot discount; the ingestion service's always-on task is a fixed cost, not per page)");
  return costs;
}
