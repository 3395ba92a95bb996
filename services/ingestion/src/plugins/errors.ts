import type { FastifyError, FastifyReply, FastifyRequest, FastifySchemaCompiler } from "fastify";
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import fp from "fastify-plugin";
import type { z } from "zod";
import { findTextProblem, issuesToDetails } from "@docpipe/api-contract";
import { HttpError, ThrottledError, ValidationError, type ErrorBody } from "../errors.js";

/** Where a request schema applies, as our `validation_error` messages name it. */
const partName: Record<string, string> = { body: "body", params: "path", querystring: "query", headers: "headers" };

/**
 * Validates each part of a request with the route's zod schema (and hands the handler the
 * parsed value: coerced numbers, defaults). A mismatch is our 400 `validation_error` with each
 * issue's path and message, like every other error. Before the schema, every string of the
 * part must be text the pipeline can keep (no NUL, no lone surrogate): Postgres and S3 would
 * refuse it later with a 500 or a 503 that says nothing useful.
 */
export const validatorCompiler: FastifySchemaCompiler<z.ZodType> =
  ({ schema, httpPart }) =>
  (data) => {
    const where = `invalid request ${partName[httpPart ?? "body"] ?? httpPart}`;
    const bad = findTextProblem(data);
    if (bad) return { error: new ValidationError(where, [bad]) };
    const r = schema.safeParse(data);
    if (r.success) return { value: r.data };
    return { error: new ValidationError(where, issuesToDetails(r.error)) };
  };

/** Fastify's own 4xx errors (body parsing, limits, URLs) under our codes. */
const fastifyCodes: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "payload_too_large",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported_media_type",
  FST_ERR_CTP_EMPTY_JSON_BODY: "invalid_json",
  FST_ERR_CTP_INVALID_JSON_BODY: "invalid_json",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "bad_request",
  FST_ERR_BAD_URL: "bad_url",
};

/** The longest URL (path and query) we read, in characters; longer is 414 `uri_too_long`. */
export const MAX_URL_LENGTH = 8192;

const errorBody = (code: string, message: string, details: unknown = null): ErrorBody => ({ error: { code, message, details } });

/** A route's path pattern (`/batches/:id`, `/docs/*`) as a regular expression over request paths. */
function pathPattern(url: string): RegExp {
  const source = url
    .split(/(:[A-Za-z0-9_]+|\*)/)
    .map((part) => (part === "*" ? ".*" : part.startsWith(":") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("");
  return new RegExp(`^${source}$`);
}

/**
 * Answers what Node's HTTP parser refuses before fastify sees a request (a header section over
 * 16 KB, a request that is not HTTP, one whose headers never end) in our error shape, where
 * fastify's default would write its own. Nothing of the error itself reaches the client.
 */
export function clientErrorHandler(this: { log: { debug(o: object, m: string): void } }, err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  let status: number;
  let body: ErrorBody;
  if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    status = 408;
    body = errorBody("request_timeout", "the request did not arrive in time; send it again");
  } else if (err.code === "HPE_HEADER_OVERFLOW") {
    status = 431;
    body = errorBody("headers_too_large", "the request line and headers are over 16 KB; an API key is under 100 bytes");
  } else {
    status = 400;
    body = errorBody("bad_request", "the request is not valid HTTP/1.1", { parser: err.code ?? "unknown" });
  }
  this.log.debug({ code: err.code, status }, "client error");
  if (socket.writable) {
    const json = JSON.stringify(body);
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`,
    );
  }
  socket.destroy();
}

/** Fastify's router errors (a URL that does not decode, a path parameter over its length limit) in our shape. */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  if (request.url.length > MAX_URL_LENGTH) void reply.code(414).send(uriTooLong(request.url));
  else if (error.code === "FST_ERR_MAX_PARAM_LENGTH") {
    void reply.code(400).send(errorBody("validation_error", "invalid request path", [{ path: "", message: "a path parameter is over 100 characters" }]));
  } else void reply.code(400).send(errorBody(fastifyCodes[error.code] ?? "bad_request", "the URL is not valid (a % not followed by two hex digits?)"));
}

const uriTooLong = (url: string) => errorBody("uri_too_long", `the URL is ${url.length} characters; at most ${MAX_URL_LENGTH} are read`);

/**
 * Every error answer has one shape, `{ error: { code, message, details } }`: our HttpErrors
 * with their status, fastify's own 4xx under our codes, a URL over MAX_URL_LENGTH as 414, an
 * unknown route as 404 `route_not_found` (405 `method_not_allowed` with Allow when the path
 * has other methods), a request arriving while the app closes as 503, and anything else as a
 * logged 500 that says nothing more. Node's own refusals are `clientErrorHandler`'s.
 */
export const errorsPlugin = fp(
  async (app) => {
    const routes: { method: string; pattern: RegExp }[] = [];
    app.addHook("onRoute", (route) => {
      for (const method of [route.method].flat()) routes.push({ method, pattern: pathPattern(route.url) });
    });
    let closing = false;
    app.addHook("preClose", async () => {
      closing = true;
    });
    app.addHook("onRequest", async (request, reply) => {
      if (closing) {
        reply.header("connection", "close");
        throw new HttpError(503, "shutting_down", "this process is stopping; send the request again (another one answers)");
      }
      if (request.url.length > MAX_URL_LENGTH) return reply.code(414).send(uriTooLong(request.url));
    });

    app.setErrorHandler((error: FastifyError | HttpError, request, reply) => {
      if (error instanceof HttpError) {
        if (error.statusCode >= 500) request.log.warn({ err: error }, "request failed");
        if (error instanceof ThrottledError) {
          reply.header("retry-after", String(error.retryAfterSeconds));
          for (const [k, v] of Object.entries(error.headers)) reply.header(k, v);
        }
        return reply.code(error.statusCode).send(error.toBody());
      }
      const status = error.statusCode;
      if (status !== undefined && status >= 400 && status < 500) {
        return reply.code(status).send(errorBody(fastifyCodes[error.code] ?? "bad_request", error.message));
      }
      request.log.error({ err: error }, "unhandled error");
      return reply.code(500).send(errorBody("internal_error", "internal error"));
    });

    app.setNotFoundHandler((request, reply) => {
      const path = request.url.split("?", 1)[0]!;
      const methods = [...new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method))];
      if (methods.length > 0 && !methods.includes(request.method)) {
        return reply
          .code(405)
          .header("allow", methods.join(", "))
          .send(errorBody("method_not_allowed", `${request.method} is not allowed on ${path}; use ${methods.join(" or ")}`, { allow: methods }));
      }
      return reply.code(404).send(errorBody("route_not_found", `no route ${request.method} ${path}`));
    });
  },
  { name: "errors" },
);
