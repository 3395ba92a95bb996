import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** One loop's handle: it beats whenever it makes progress, and closes when it stops on purpose. */
export interface LivenessProbe {
  beat(): void;
  /** The loop stopped on purpose (a graceful stop): its silence no longer counts. */
  close(): void;
}

export interface LoopState {
  name: string;
  /** Milliseconds since its last beat (or since it was registered). */
  silentMs: number;
  maxSilenceMs: number;
  alive: boolean;
}

export interface LivenessReport {
  alive: boolean;
  loops: LoopState[];
}

/**
 * Whether a process's loops are alive: each loop registers with the longest silence it can have
 * while healthy and beats when it makes progress. The process is alive while every open loop has
 * beaten within its bound; a loop that stopped beating (a hung call, a blocked event loop, a
 * deadlock) makes it wedged, and the container's health check then fails so ECS replaces the task.
 */
export class Liveness {
  private readonly loops = new Map<symbol, { name: string; maxSilenceMs: number; last: number }>();
  private readonly now: () => number;

  constructor(opts: { now?: () => number } = {}) {
    this.now = opts.now ?? Date.now;
  }

  loop(name: string, maxSilenceMs: number): LivenessProbe {
    const id = Symbol(name);
    this.loops.set(id, { name, maxSilenceMs, last: this.now() });
    return {
      beat: () => {
        const l = this.loops.get(id);
        if (l) l.last = this.now();
      },
      close: () => void this.loops.delete(id),
    };
  }

  check(): LivenessReport {
    const now = this.now();
    const loops = [...this.loops.values()].map((l) => ({
      name: l.name,
      silentMs: now - l.last,
      maxSilenceMs: l.maxSilenceMs,
      alive: now - l.last <= l.maxSilenceMs,
    }));
    return { alive: loops.every((l) => l.alive), loops };
  }
}

export interface LivenessServer {
  /** `http://host:port`; GET `/livez` answers 200 while alive, 503 when a loop is wedged. */
  url: string;
  close(): Promise<void>;
}

/**
 * Serves {@link Liveness.check} on `GET /livez` for the container's health check
 * (docker/healthcheck.sh). Bound to loopback by default: only the check inside the task asks.
 */
export async function serveLiveness(liveness: Liveness, opts: { port: number; host?: string }): Promise<LivenessServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" || req.url !== "/livez") {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found"}');
      return;
    }
    const report = liveness.check();
    res
      .writeHead(report.alive ? 200 : 503, { "content-type": "application/json" })
      .end(JSON.stringify({ status: report.alive ? "alive" : "wedged", loops: report.loops }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host ?? "127.0.0.1", () => resolve());
  });
  server.unref();
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address}:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
