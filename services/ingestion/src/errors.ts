/**
 * Every error the API returns has one shape, `{ error: { code, message, details } }`, so a
 * client switches on `code` and shows `message` to a person.
 */
export interface ErrorBody {
  error: { code: string; message: string; details: unknown };
}

/** An error that becomes an HTTP response with its status, code and details. */
export class HttpError extends Error {
  override readonly name: string = "HttpError";
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details: unknown = null,
    opts?: { cause?: unknown },
  ) {
    super(message, opts);
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

/** The request's body, path or query does not match its schema. */
export class ValidationError extends HttpError {
  override readonly name = "ValidationError";
  constructor(message: string, details: unknown) {
    super(400, "validation_error", message, details);
  }
}

/** No key, an unknown, disabled or expired key (401/403), or a bucket or prefix outside the key's allow-list (403). */
export class AccessError extends HttpError {
  override readonly name = "AccessError";
  constructor(statusCode: 401 | 403, code: string, message: string, details: unknown = null) {
    super(statusCode, code, message, details);
  }
}

/**
 * 429: over the key's rate (`rate_limited`), its document or page quota (`quota_exceeded`, `page_quota_exceeded`), or too
 * many failed authentications from one address; `retryAfterSeconds` becomes Retry-After.
 */
export class ThrottledError extends HttpError {
  override readonly name = "ThrottledError";
  constructor(
    code: "rate_limited" | "quota_exceeded" | "page_quota_exceeded" | "auth_failures_limited",
    message: string,
    readonly retryAfterSeconds: number,
    details: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(429, code, message, details);
  }
}

export class NotFoundError extends HttpError {
  override readonly name = "NotFoundError";
  constructor(what: "batch" | "document" | "route", id: string) {
    super(404, `${what}_not_found`, `${what} ${id} does not exist`, { id });
  }
}

/** The batch names a bucket we cannot list: missing, forbidden, or S3 is unreachable. */
export class BucketError extends HttpError {
  override readonly name = "BucketError";
  constructor(
    statusCode: number,
    code: "bucket_not_found" | "bucket_forbidden" | "bucket_wrong_region" | "bucket_unavailable",
    message: string,
    readonly bucket: string,
    opts?: { cause?: unknown },
  ) {
    super(statusCode, code, message, { bucket }, opts);
  }
}

/** Listing failed for a reason that a retry will not fix (the bucket vanished, access was revoked). */
export class ListingError extends Error {
  override readonly name = "ListingError";
  constructor(
    readonly code: string,
    message: string,
    readonly batchId: string,
    opts?: { cause?: unknown },
  ) {
    super(message, opts);
  }
}
