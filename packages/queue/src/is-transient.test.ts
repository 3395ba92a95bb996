import { isTransient, QueueSendError } from "./errors.js";
import { describe, expect, it } from "vitest";

const awsError = (name: string, status: number, extra: object = {}) =>
  Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status }, ...extra });

describe("isTransient", () => {
  it("retries throttling, 5xx, network and database-unreachable failures", () => {
    expect(isTransient(awsError("SlowDown", 503))).toBe(true);
    expect(isTransient(awsError("InternalError", 500))).toBe(true);
    expect(isTransient(awsError("Throttled", 400, { $retryable: { throttling: true } }))).toBe(true);
    expect(isTransient(Object.assign(new Error("connect"), { code: "ECONNREFUSED" }))).toBe(true);
    expect(isTransient(new Error("wrapped", { cause: Object.assign(new Error("reset"), { code: "ECONNRESET" }) }))).toBe(true);
    expect(isTransient(Object.assign(new Error("pool"), { code: "P2024" }))).toBe(true);
    expect(isTransient(Object.assign(new Error("terminating connection due to administrator command"), { code: "57P01" }))).toBe(true);
    expect(isTransient(Object.assign(new Error("deadlock detected"), { code: "40P01" }))).toBe(true);
    expect(isTransient(new QueueSendError("3 of 10 not sent", { failedCount: 3 }))).toBe(true);
  });

  it("does not retry what a retry cannot fix", () => {
    expect(isTransient(awsError("NoSuchBucket", 404))).toBe(false);
    expect(isTransient(awsError("AccessDenied", 403))).toBe(false);
    expect(isTransient(Object.assign(new Error("unique"), { code: "P2002" }))).toBe(false);
    expect(isTransient(Object.assign(new Error("duplicate key value violates unique constraint"), { code: "23505" }))).toBe(false);
    expect(isTransient(new TypeError("undefined is not a function"))).toBe(false);
    expect(isTransient("a string")).toBe(false);
  });
});
