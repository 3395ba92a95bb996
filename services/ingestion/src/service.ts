import { buildApp, type AppOptions, type IngestionApp } from "./app.js";

export interface IngestionServiceOptions extends AppOptions {
  /** @defaultValue `8080`; `0` picks a free port. */
  port?: number;
  /** @defaultValue `"127.0.0.1"` */
  host?: string;
}

export interface IngestionService {
  readonly app: IngestionApp;
  /** Listens and resumes unfinished listings; resolves with the base URL. */
  start(): Promise<string>;
  /** Stops taking requests, lets in-flight listing pages finish. */
  stop(): Promise<void>;
}

/** The ingestion service in the shape every service has, for runners that start them all in one process. */
export function createIngestionService(opts: IngestionServiceOptions): IngestionService {
  const app = buildApp(opts);
  return {
    app,
    async start() {
      return app.listen({ port: opts.port ?? 8080, host: opts.host ?? "127.0.0.1" });
    },
    async stop() {
      await app.close();
    },
  };
}
