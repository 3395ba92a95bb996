import type { QueueKey } from "@docpipe/queue";
import type { ServiceId } from "./config.js";
import { ADMIN_PACKAGE, MIGRATE_PACKAGE, RECONCILER_PACKAGE } from "./images.js";
import type { workKeys } from "./storage.js";

/** Port the ingestion service listens on inside its container. */
export const INGESTION_PORT = 8080;
/** Loopback port where a queue worker serves GET /livez for its health check (HEALTH_PORT). */
export const WORKER_HEALTH_PORT = 8081;

export type WorkPrefix = keyof typeof workKeys;

/** What one deployable may touch; its task role gets exactly this and nothing else. */
export interface Deployable {
  readonly id: ServiceId;
  /** The workspace package the image is built from (`docker build --build-arg SERVICE=`). */
  readonly package: string;
  /** Queues it consumes; `"dead-letter"` is every DLQ (the failsafe). */
  readonly consumes: readonly QueueKey[] | "dead-letter";
  readonly produces: readonly QueueKey[];
  readonly readsStaging: boolean;
  readonly readsWork: readonly WorkPrefix[];
  readonly writesWork: readonly WorkPrefix[];
  /**
   * Jobs can take longer than the 120 s between SIGTERM and SIGKILL (a multi-gigabyte split): the
   * service holds ECS task scale-in protection while one runs (its role may set it), and runs on
   * on-demand Fargate, because a Spot interruption ignores protection.
   */
  readonly longJobs?: boolean;
  /** The variable the service reads its worker concurrency from (see its src/config.ts). */
  readonly concurrencyEnv?: string;
  readonly environment?: Record<string, string>;
}

/** The pipeline of DESIGN.md: who consumes and produces what, and which keys each stage reads and writes. */
export const deployables: readonly Deployable[] = [
  {
    id: "ingestion",
    package: "ingestion",
    consumes: [],
    // retry-failed re-sends a failed page to the single-page queue, or re-announces its PNG on the converted-image queue.
    produces: ["ingest", "singlePage", "convertedImage"],
    readsStaging: true,
    readsWork: [],
    writesWork: [],
    // Behind the load balancer: its X-Forwarded-For names the client that failed authentications are counted per.
    environment: { PORT: String(INGESTION_PORT), HOST: "0.0.0.0", TRUST_PROXY: "1" },
  },
  {
    id: "chunking-orchestrator",
    package: "chunking-orchestrator",
    consumes: ["ingest"],
    produces: ["large", "small", "singlePage"],
    readsStaging: true,
    readsWork: [],
    writesWork: [],
    concurrencyEnv: "CONCURRENCY",
  },
  {
    id: "splitter-large",
    package: "splitter",
    consumes: ["large"],
    produces: ["small"],
    readsStaging: true,
    readsWork: [],
    writesWork: ["chunks"],
    longJobs: true,
    concurrencyEnv: "CONCURRENCY",
    environment: { ROLE: "large" },
  },
  {
    id: "splitter-small",
    package: "splitter",
    consumes: ["small"],
    produces: ["singlePage"],
    readsStaging: true,
    readsWork: ["chunks"],
    writesWork: ["pages"],
    concurrencyEnv: "CONCURRENCY",
    environment: { ROLE: "small" },
  },
  {
    id: "page-converter",
    package: "page-converter",
    consumes: ["singlePage"],
    produces: [],
    readsStaging: true,
    readsWork: ["pages"],
    writesWork: ["images"],
    // One render thread per vCPU; the converter takes four pages per thread (its pagesPerRenderThread).
    concurrencyEnv: "RENDER_THREADS",
  },
  {
    id: "inference-client",
    package: "inference-client",
    consumes: ["convertedImage"],
    produces: [],
    readsStaging: false,
    readsWork: ["images"],
    writesWork: [],
    concurrencyEnv: "WORKER_CONCURRENCY",
  },
  {
    id: "failsafe",
    package: "failsafe",
    consumes: "dead-letter",
    // Replays go back to the queue they came from; a full break-down re-enters as pages.
    // What it gives up on is parked for a person.
    produces: ["ingest", "large", "small", "singlePage", "convertedImage", "parked"],
    readsStaging: true,
    readsWork: ["chunks", "pages", "images"],
    writesWork: ["chunks", "pages", "images"],
    longJobs: true,
    concurrencyEnv: "CONCURRENCY",
  },
];

/** Every image the stack deploys, by services/ directory: one per deployable package, the migrate, admin and reconciler tasks'. */
export const imagePackages: readonly string[] = [...new Set(deployables.map((d) => d.package)), MIGRATE_PACKAGE, ADMIN_PACKAGE, RECONCILER_PACKAGE];
