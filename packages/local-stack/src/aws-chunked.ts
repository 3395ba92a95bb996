import type { IncomingMessage } from "node:http";
import { Transform, type TransformCallback } from "node:stream";

/**
 * Decodes an `aws-chunked` request body (`<hex size>[;chunk-signature=…]\r\n<data>\r\n` …
 * `0\r\n<trailers>\r\n\r\n`), which the AWS SDK sends for streamed uploads with checksums.
 * S3 stores the decoded bytes; s3rver would store the framing too.
 */
export class AwsChunkedDecoder extends Transform {
  #buffer: Buffer = Buffer.alloc(0);
  #remaining = 0;
  #state: "size" | "data" | "crlf" | "trailer" = "size";

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#buffer = this.#buffer.length ? Buffer.concat([this.#buffer, chunk]) : chunk;
    try {
      this.#drain();
      callback();
    } catch (e) {
      callback(e as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    callback(this.#state === "trailer" ? undefined : new Error("aws-chunked body ended before its last chunk"));
  }

  #drain(): void {
    for (;;) {
      if (this.#state === "size") {
        const end = this.#buffer.indexOf("\r\n");
        if (end < 0) return;
        const size = Number.parseInt(this.#buffer.subarray(0, end).toString("latin1").split(";")[0] ?? "", 16);
        if (!Number.isInteger(size) || size < 0) throw new Error("malformed aws-chunked chunk header");
        this.#buffer = this.#buffer.subarray(end + 2);
        this.#remaining = size;
        this.#state = size === 0 ? "trailer" : "data";
      } else if (this.#state === "data") {
        if (!this.#buffer.length) return;
        const take = Math.min(this.#remaining, this.#buffer.length);
        this.push(this.#buffer.subarray(0, take));
        this.#buffer = this.#buffer.subarray(take);
        this.#remaining -= take;
        if (this.#remaining === 0) this.#state = "crlf";
      } else if (this.#state === "crlf") {
        if (this.#buffer.length < 2) return;
        this.#buffer = this.#buffer.subarray(2);
        this.#state = "size";
      } else {
        // Trailers (x-amz-checksum-…): S3 checks them; the stand-in drops them.
        this.#buffer = Buffer.alloc(0);
        return;
      }
    }
  }
}

export function isAwsChunked(req: IncomingMessage): boolean {
  const encoding = req.headers["content-encoding"] ?? "";
  const sha = req.headers["x-amz-content-sha256"] ?? "";
  return encoding.split(",").some((e) => e.trim() === "aws-chunked") || (typeof sha === "string" && sha.startsWith("STREAMING-"));
}

/**
 * The request as S3 sees it after decoding: the decoded body, `content-length` set to the
 * decoded length, and the chunked encoding and trailer headers gone.
 */
export function decodeAwsChunked(req: IncomingMessage): IncomingMessage {
  const headers = { ...req.headers };
  const encoding = (headers["content-encoding"] ?? "")
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e && e !== "aws-chunked")
    .join(", ");
  if (encoding) headers["content-encoding"] = encoding;
  else delete headers["content-encoding"];
  const decodedLength = headers["x-amz-decoded-content-length"];
  if (typeof decodedLength === "string") headers["content-length"] = decodedLength;
  else delete headers["content-length"];
  headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
  delete headers["x-amz-trailer"];
  delete headers["x-amz-decoded-content-length"];

  const body = req.pipe(new AwsChunkedDecoder());
  req.once("error", (e) => body.destroy(e));
  // Koa and s3rver read the request's metadata and stream its body: the decoder stands in.
  return Object.assign(body, {
    headers,
    rawHeaders: Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v.flatMap((x) => [k, x]) : [k, String(v)])),
    method: req.method,
    url: req.url,
    httpVersion: req.httpVersion,
    httpVersionMajor: req.httpVersionMajor,
    httpVersionMinor: req.httpVersionMinor,
    socket: req.socket,
    connection: req.socket,
    complete: false,
    aborted: false,
  }) as unknown as IncomingMessage;
}
