import { randomBytes } from "node:crypto";
import type { EventEmitter } from "node:events";
import fs from "node:fs/promises";
import http from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { encodeS3Key, MAX_BATCH_ENTRIES, QueueSender, type Logger } from "@docpipe/queue";
import { decodeAwsChunked, isAwsChunked } from "./aws-chunked.js";
import { LocalStackError } from "./errors.js";

/** The part of s3rver (which ships no types) that the stack uses. */
interface S3rver extends EventEmitter {
  configureBuckets(): Promise<void>;
  /** Koa's request handler. */
  callback(): http.RequestListener;
}
type S3rverConstructor = new (options: {
  silent: boolean;
  directory: string;
  vhostBuckets: boolean;
  allowMismatchedSignatures: boolean;
  configureBuckets: { name: string }[];
}) => S3rver;
const S3rver = createRequire(import.meta.url)("s3rver") as S3rverConstructor;

/** s3rver's built-in account; it checks request signatures against it. */
export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;

/** The part of s3rver's event we read (its records follow the S3 notification layout, version 2.0). */
interface S3rverEvent {
  Records: {
    eventName: string;
    eventTime: string;
    requestParameters?: { sourceIPAddress?: string };
    s3: { bucket: { name: string }; object: { key: string; size?: number; eTag?: string } };
  }[];
}

export interface NotificationTarget {
  sqs: SQSClient;
  queueUrl: string;
  /** Only object-created events in this bucket whose key matches are forwarded. */
  bucket: string;
  keyPattern: RegExp;
  region: string;
}

/**
 * Notifications of objects created this close together go to SQS in one SendMessageBatch (each
 * still its own message, as S3 sends them), not one SendMessage each.
 */
const NOTIFY_WINDOW_MS = 100;

let sequence = 0n;

/**
 * The S3 event notification S3 sends to SQS for one created object (event structure 2.1:
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html).
 */
export function s3NotificationBody(
  record: S3rverEvent["Records"][number],
  region: string,
  configurationId = "converted-images",
): string {
  const { bucket, object } = record.s3;
  const hex = (n: number) => randomBytes(n).toString("hex").toUpperCase();
  sequence += 1n;
  return JSON.stringify({
    Records: [
      {
        eventVersion: "2.1",
        eventSource: "aws:s3",
        awsRegion: region,
        eventTime: record.eventTime,
        eventName: record.eventName,
        userIdentity: { principalId: `AWS:${hex(10)}` },
        requestParameters: { sourceIPAddress: record.requestParameters?.sourceIPAddress ?? "127.0.0.1" },
        responseElements: { "x-amz-request-id": hex(8), "x-amz-id-2": randomBytes(48).toString("base64") },
        s3: {
          s3SchemaVersion: "1.0",
          configurationId,
          bucket: { name: bucket.name, ownerIdentity: { principalId: hex(7) }, arn: `arn:aws:s3:::${bucket.name}` },
          object: {
            key: encodeS3Key(object.key),
            ...(object.size !== undefined && { size: object.size }),
            ...(object.eTag !== undefined && { eTag: object.eTag }),
            sequencer: (BigInt(Date.now()) * 1_000_000n + (sequence % 1_000_000n)).toString(16).toUpperCase().padStart(18, "0"),
          },
        },
      },
    ],
  });
}

/** `PUT object`, `PUT object?tagging`, `GET bucket?list-type`...: what a path-style request does, without its names and values. */
function requestKind(req: http.IncomingMessage): string {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  const path = q < 0 ? url : url.slice(0, q);
  const params = q < 0 ? [] : [...new URLSearchParams(url.slice(q + 1)).keys()].filter((k) => !k.startsWith("X-Amz-")).sort();
  const target = path.indexOf("/", 1) > 0 && path.indexOf("/", 1) < path.length - 1 ? "object" : "bucket";
  return `${req.method ?? "GET"} ${target}${params.length ? `?${params.join("&")}` : ""}`;
}

export interface S3ServerOptions {
  directory: string;
  port: number;
  buckets: string[];
  logger: Logger;
}

/** s3rver on 127.0.0.1 (path-style requests) with an S3-notification bridge to SQS. */
export class S3Server {
  readonly #server: S3rver;
  readonly #http: http.Server;
  readonly #opts: S3ServerOptions;
  readonly #pending = new Set<Promise<void>>();
  /** Notifications waiting for their batch. */
  #queued: { body: string; bucket: string; key: string }[] = [];
  #flushTimer: NodeJS.Timeout | undefined;
  readonly #requests = new Map<string, number>();
  #target: { sender: QueueSender; bucket: string; keyPattern: RegExp; region: string } | undefined;
  #port = 0;

  constructor(opts: S3ServerOptions) {
    this.#opts = opts;
    this.#server = new S3rver({
      silent: true,
      directory: opts.directory,
      vhostBuckets: false,
      // Decoding aws-chunked bodies rewrites signed headers; credentials are still checked.
      allowMismatchedSignatures: true,
      configureBuckets: opts.buckets.map((name) => ({ name })),
    });
    const handle = this.#server.callback();
    // The SDK streams uploads as aws-chunked with checksum trailers (its default since 2025);
    // S3 decodes them, s3rver 3.7 would store the framing as part of the object.
    this.#http = http.createServer((req, res) => {
      const kind = requestKind(req);
      this.#requests.set(kind, (this.#requests.get(kind) ?? 0) + 1);
      handle(isAwsChunked(req) ? decodeAwsChunked(req) : req, res);
    });
    this.#server.on("event", (event: S3rverEvent) => this.#onEvent(event));
    // Koa reports every failed request here, NoSuchKey included; those are answers, not faults.
    this.#server.on("error", (err: Error & { code?: string }) => opts.logger.debug({ err }, "s3rver request failed"));
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Requests since start by kind: method, object or bucket, and query parameter names (`GET bucket?list-type`). */
  get requests(): Record<string, number> {
    return Object.fromEntries(this.#requests);
  }

  async start(): Promise<void> {
    await fs.mkdir(this.#opts.directory, { recursive: true });
    try {
      await this.#server.configureBuckets();
      await new Promise<void>((resolve, reject) => {
        this.#http.once("error", reject);
        this.#http.listen(this.#opts.port, "127.0.0.1", () => resolve());
      });
      this.#port = (this.#http.address() as AddressInfo).port;
    } catch (e) {
      throw new LocalStackError(`cannot start s3rver on port ${this.#opts.port}`, { cause: e });
    }
  }

  /** From now on, matching object-created events are sent to `target.queueUrl`. */
  notify(target: NotificationTarget): void {
    const { sqs, queueUrl, ...rest } = target;
    this.#target = { sender: new QueueSender({ sqs, queueUrl, logger: this.#opts.logger }), ...rest };
  }

  #onEvent(event: S3rverEvent): void {
    const target = this.#target;
    if (!target) return;
    for (const record of event.Records) {
      const { bucket, object } = record.s3;
      if (!record.eventName.startsWith("ObjectCreated:")) continue;
      if (bucket.name !== target.bucket || !target.keyPattern.test(object.key)) continue;
      this.#queued.push({ body: s3NotificationBody(record, target.region), bucket: bucket.name, key: object.key });
      if (this.#queued.length >= MAX_BATCH_ENTRIES) this.#flush();
      else this.#flushTimer ??= setTimeout(() => this.#flush(), NOTIFY_WINDOW_MS);
    }
  }

  /** Sends the notifications waiting, ten to a SendMessageBatch (QueueSender retries failed entries). */
  #flush(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    const target = this.#target;
    const batch = this.#queued;
    this.#queued = [];
    if (!target || batch.length === 0) return;
    const log = this.#opts.logger;
    const sent = target.sender
      .sendBodies(batch.map((n) => n.body))
      .then(
        () => log.debug({ count: batch.length }, "s3 notifications sent"),
        (err: unknown) => {
          for (const n of batch) log.error({ err, bucket: n.bucket, key: n.key }, "s3 notification not sent");
        },
      )
      .finally(() => this.#pending.delete(sent));
    this.#pending.add(sent);
  }

  /** Sends the notifications waiting, waits for those in flight, then closes the server. */
  async stop(): Promise<void> {
    this.#flush();
    this.#target = undefined;
    await Promise.all(this.#pending);
    if (this.#http.listening) {
      const closed = new Promise<void>((resolve) => this.#http.close(() => resolve()));
      this.#http.closeAllConnections();
      await closed;
    }
    this.#port = 0;
  }
}

