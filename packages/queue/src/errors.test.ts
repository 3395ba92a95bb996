import { describe, expect, it } from "vitest";
import { coerceError, errorCode, PermanentError, PoisonMessageError, QueueSendError, TransientError } from "./errors.js";

describe("error classes", () => {
  it("carry their class name, code, cause and ids", () => {
    const cause = new Error("socket hang up");
    const e = new TransientError("s3_unavailable", "download failed", { cause, documentId: "d1", bucket: "b" });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("TransientError");
    expect(e.code).toBe("s3_unavailable");
    expect(e.cause).toBe(cause);
    expect(e.ids).toEqual({ documentId: "d1", bucket: "b" });
    expect(e.stack).toContain("download failed");
  });

  it("let subclasses be told permanent from transient by type", () => {
    const poison = new PoisonMessageError("invalid_json", "bad");
    expect(poison).toBeInstanceOf(PermanentError);
    expect(poison).not.toBeInstanceOf(TransientError);
    expect(poison.name).toBe("PoisonMessageError");

    const send = new QueueSendError("2 of 5 not sent", { failedCount: 2, queueUrl: "http://q" });
    expect(send).toBeInstanceOf(TransientError);
    expect(send.code).toBe("sqs_send_failed");
    expect(send.failedCount).toBe(2);
    expect(send.ids).toEqual({ queueUrl: "http://q" });
  });

  it("leave out cause when none is given", () => {
    expect("cause" in new PermanentError("x", "y")).toBe(false);
  });
});

describe("coerceError", () => {
  it("returns errors unchanged", () => {
    const e = new RangeError("r");
    expect(coerceError(e)).toBe(e);
  });

  it("wraps strings, error-like objects and anything else, keeping the original as cause", () => {
    const s = coerceError("boom");
    expect(s.message).toBe("boom");
    expect(s.cause).toBe("boom");

    const like = { name: "ThrottlingException", message: "slow down" };
    const l = coerceError(like);
    expect(l).toBeInstanceOf(Error);
    expect(l.name).toBe("ThrottlingException");
    expect(l.message).toBe("slow down");
    expect(l.cause).toBe(like);

    expect(coerceError({ a: 1 }).message).toBe('{"a":1}');
    expect(coerceError(undefined).message).toBe("undefined");
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(coerceError(circular).message).toBe("[object Object]");
  });
});

describe("errorCode", () => {
  it("prefers a docpipe code, then an SDK error name, then internal", () => {
    expect(errorCode(new PermanentError("not_pdf", "x"))).toBe("not_pdf");
    const sdk = new Error("x");
    sdk.name = "NoSuchKey";
    expect(errorCode(sdk)).toBe("NoSuchKey");
    expect(errorCode(new Error("x"))).toBe("internal");
  });
});
