import { PdfError } from "@docpipe/pdf";
import { describe, expect, it } from "vitest";
import { PermanentError, S3Error, S3ObjectNotFoundError, TransientError } from "./errors.js";
import { failureReason, toStageError } from "./failure.js";

describe("toStageError", () => {
  it("keeps a PDF's permanence: bad bytes dead-letter, a timeout retries", () => {
    const bad = toStageError(new PdfError("encrypted", "the PDF needs a password"));
    expect(bad).toBeInstanceOf(PermanentError);
    expect(bad.code).toBe("encrypted");
    const slow = toStageError(new PdfError("timeout", "took too long"));
    expect(slow).toBeInstanceOf(TransientError);
    expect(slow.code).toBe("timeout");
  });

  it("reports a vanished source as source_missing, and other S3 trouble as retryable", () => {
    const gone = toStageError(new S3ObjectNotFoundError("s3_not_found", "s3://b/k does not exist"));
    expect([gone instanceof PermanentError, gone.code]).toEqual([true, "source_missing"]);
    const flaky = toStageError(new S3Error("s3_unavailable", "503"));
    expect([flaky instanceof TransientError, flaky.code]).toEqual([true, "s3_unavailable"]);
  });

  it("retries what it does not recognise", () => {
    const err = toStageError(new Error("connection reset"));
    expect([err instanceof TransientError, err.code, err.message]).toEqual([true, "unexpected", "connection reset"]);
    expect(toStageError("a string").message).toBe("a string");
  });
});

describe("failureReason", () => {
  it("says what is wrong in words and keeps the detail", () => {
    expect(failureReason(new PermanentError("encrypted", "the PDF needs a password"))).toBe(
      "The PDF is encrypted; supply a copy without a password (the PDF needs a password)",
    );
    expect(failureReason(new PermanentError("something_new", "detail only"))).toBe("detail only");
  });
});
