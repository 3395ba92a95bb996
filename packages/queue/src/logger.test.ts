import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { childLogger, createLogger } from "./logger.js";

function capture(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, stream };
}

describe("createLogger", () => {
  it("writes JSON lines with the service and the bound ids, skipping undefined ones", () => {
    const { lines, stream } = capture();
    const log = createLogger({ service: "page-converter", destination: stream });
    childLogger(log, { documentId: "d1", pageNumber: 3, batchId: undefined }).info({ durationMs: 12 }, "page rendered");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ service: "page-converter", documentId: "d1", pageNumber: 3, durationMs: 12, msg: "page rendered" });
    expect(lines[0]).not.toHaveProperty("batchId");
    expect(typeof lines[0]!.time).toBe("string");
  });

  it("respects the level and redacts credentials", () => {
    const { lines, stream } = capture();
    const log = createLogger({ service: "s", level: "warn", destination: stream });
    log.info("hidden");
    log.warn({ config: { secretAccessKey: "AKIA-secret", region: "us-east-1" } }, "config");
    expect(lines).toHaveLength(1);
    expect(JSON.stringify(lines[0])).not.toContain("AKIA-secret");
    expect(lines[0]).toMatchObject({ config: { region: "us-east-1", secretAccessKey: "[redacted]" } });
  });

  it("serialises errors with their cause", () => {
    const { lines, stream } = capture();
    const log = createLogger({ service: "s", destination: stream });
    log.error({ err: new Error("outer", { cause: new Error("inner") }) }, "failed");
    expect(JSON.stringify(lines[0])).toContain("inner");
  });

  it("prints each key once when a child binds a key its parent has, with the child's value", () => {
    const raw: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        raw.push(chunk.toString());
        cb();
      },
    });
    const runner = createLogger({ service: "docpipe", destination: stream });
    const service = runner.child({ service: "inference-client" }).child({ component: "inference-client" });
    service.child({ component: "worker", worker: "converted-image" }).child({ documentId: "d1" }).info("message handled");
    expect(raw).toHaveLength(1);
    for (const key of ["service", "component", "worker", "documentId"]) expect(raw[0]!.split(`"${key}":`)).toHaveLength(2);
    expect(JSON.parse(raw[0]!)).toMatchObject({ service: "inference-client", component: "worker", worker: "converted-image", documentId: "d1" });
  });
});
