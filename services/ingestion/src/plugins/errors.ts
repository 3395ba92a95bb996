import type { FastifyError, FastifySchemaCompiler } from "fastify";
import fp from "fastify-plugin";
import type { z } from "zod";
import { issuesToDetails } from "@docpipe/api-contract";
import { HttpError, ThrottledError, ValidationError, type ErrorBody } from "../errors.js";

/** Where a request schema applies, as our `validation_error` messages name it. */
const partName: Record<string, string> = { body: "body", params: "path", querystring: "query", headers: "headers" };

/**
 * Validates each part of a request with the route's zod schema (and hands the handler the
 * parsed value: coerced numbers, defaults). A mismatch is our 400 `validation_error` with each
 * issue's path and message, like every other error.
 */
export const validatorCompiler: FastifySchemaCompiler<z.ZodType> =
  ({ schema, httpPart }) =>
  (data) => {
    const r = schema.safeParse(data);
    if (r.success) return { value: r.data };
    return { error: new ValidationError(`invalid request ${partName[httpPart ?? "body"] ?? httpPart}`, issuesToDetails(r.error)) };
  };

/** Fastify's own 4xx errors (body parsing, limits) under our codes. */
const fastifyCodes: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "payload_too_large",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported_media_type",
  FST_ERR_CTP_EMPTY_JSON_BODY: "invalid_json",
  FST_ERR_CTP_INVALID_JSON_BODY: "invalid_json",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "bad_request",
};

/**
 * Every error answer has one shape, `{ error: { code, message, details } }`: our HttpErrors
 * with their status, fastify's own 4xx under our codes, an unknown route as 404
 * `route_not_found`, and anything else as a logged 500 that says nothing more.
 */
export const errorsPlugin = fp(
  async (app) => {
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
        const body: ErrorBody = { error: { code: fastifyCodes[error.code] ?? "bad_request", message: error.message, details: null } };
        return reply.code(status).send(body);
      }
      request.log.error({ err: error }, "unhandled error");
      const body: ErrorBody = { error: { code: "internal_error", message: "internal error", details: null } };
      return reply.code(500).send(body);
    });

    app.setNotFoundHandler((request, reply) => {
      const body: ErrorBody = { error: { code: "route_not_found", message: `no route ${request.method} ${request.url}`, details: null } };
      return reply.code(404).send(body);
    });
  },
  { name: "errors" },
);
