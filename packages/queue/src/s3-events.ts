import { PoisonMessageError } from "./errors.js";

export interface S3EventRecord {
  bucket: string;
  /** Decoded: S3 URL-encodes keys in notifications, with `+` for a space. */
  key: string;
  size?: number;
  /** e.g. `ObjectCreated:Put`, `ObjectCreated:CompleteMultipartUpload`. */
  eventName: string;
}

export type S3Event = { kind: "test" } | { kind: "records"; records: S3EventRecord[] };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function invalid(reason: string): PoisonMessageError {
  return new PoisonMessageError("invalid_s3_event", `not an S3 event notification: ${reason}`);
}

/** Encodes a key the way S3 does in event notifications: form encoding (space as `+`), with `/` left as is. */
export function encodeS3Key(key: string): string {
  return encodeURIComponent(key)
    .replace(/%20/g, "+")
    .replace(/%2F/gi, "/")
    .replace(/[!'()]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * The body S3 sends to SQS when an object is created (event structure 2.1), for an object
 * that is already in place: a consumer cannot tell it from S3's own notification, which is
 * the point. `configurationId` says who sent it (retry-failed, the reconciler).
 */
export function objectCreatedEvent(bucket: string, key: string, region: string, configurationId: string): string {
  return JSON.stringify({
    Records: [
      {
        eventVersion: "2.1",
        eventSource: "aws:s3",
        awsRegion: region,
        eventTime: new Date().toISOString(),
        eventName: "ObjectCreated:Put",
        s3: {
          s3SchemaVersion: "1.0",
          configurationId,
          bucket: { name: bucket, arn: `arn:aws:s3:::${bucket}` },
          object: { key: encodeS3Key(key) },
        },
      },
    ],
  });
}

/** Keys arrive form-encoded: `+` is a space and everything else is percent-encoded. */
export function decodeS3Key(encoded: string): string {
  try {
    return decodeURIComponent(encoded.replace(/\+/g, " "));
  } catch (e) {
    throw new PoisonMessageError("invalid_s3_event", `S3 event key is not valid percent-encoding: ${JSON.stringify(encoded)}`, { cause: e });
  }
}

/**
 * Reads an S3 event notification as delivered to SQS: either the JSON string body or its parsed
 * value. Recognises the `s3:TestEvent` that S3 sends once when a notification is configured,
 * and unwraps an SNS envelope (S3 → SNS → SQS without raw delivery). Throws
 * {@link PoisonMessageError} for anything else, so a worker dead-letters it at once.
 */
export function parseS3Event(body: unknown): S3Event {
  let value = body;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch (e) {
      throw new PoisonMessageError("invalid_json", "S3 event body is not JSON", { cause: e });
    }
  }
  if (!isObject(value)) throw invalid("body is not an object");
  if (value.Type === "Notification" && typeof value.Message === "string") return parseS3Event(value.Message);
  if (value.Event === "s3:TestEvent") return { kind: "test" };
  if (!Array.isArray(value.Records)) throw invalid("no Records array");

  const records = value.Records.map((r, i): S3EventRecord => {
    if (!isObject(r)) throw invalid(`record ${i} is not an object`);
    const s3 = r.s3;
    const eventName = r.eventName;
    if (typeof eventName !== "string") throw invalid(`record ${i} has no eventName`);
    if (!isObject(s3) || !isObject(s3.bucket) || !isObject(s3.object)) throw invalid(`record ${i} has no s3.bucket/s3.object`);
    const bucket = s3.bucket.name;
    const key = s3.object.key;
    if (typeof bucket !== "string" || bucket === "") throw invalid(`record ${i} has no bucket name`);
    if (typeof key !== "string" || key === "") throw invalid(`record ${i} has no object key`);
    const size = s3.object.size;
    return {
      bucket,
      key: decodeS3Key(key),
      eventName,
      ...(typeof size === "number" && Number.isFinite(size) && { size }),
    };
  });
  return { kind: "records", records };
}
