import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { createJsonSchemaTransform, createJsonSchemaTransformObject } from "fastify-type-provider-zod";

type Document = ReturnType<ReturnType<typeof createJsonSchemaTransformObject>>;
type OpenApiParts = { paths?: unknown; components?: { schemas?: Record<string, unknown> } };

/** Every `#/components/schemas/X` a part of the document points at. */
function refsIn(value: unknown, into: Set<string>): Set<string> {
  if (Array.isArray(value)) for (const v of value) refsIn(v, into);
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (k === "$ref" && typeof v === "string" && v.startsWith("#/components/schemas/")) into.add(v.slice("#/components/schemas/".length));
      else refsIn(v, into);
    }
  }
  return into;
}

/**
 * The zod schemas with an id become `components.schemas`, each as an output (`X`) and an input
 * (`XInput`) variant; only those the operations use stay, so the document has no unused one.
 */
function usedComponentsOnly(document: Document): Document {
  const { paths, components } = document as OpenApiParts;
  const all = components?.schemas ?? {};
  const used = refsIn(paths, new Set());
  const pending = [...used];
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    for (const r of refsIn(all[name], new Set())) {
      if (!used.has(r)) {
        used.add(r);
        pending.push(r);
      }
    }
  }
  const schemas = Object.fromEntries(Object.entries(all).filter(([name]) => used.has(name)));
  return { ...document, components: { ...components, schemas } } as Document;
}

const transformObject = createJsonSchemaTransformObject({});

/**
 * The OpenAPI 3.0 document of the API, generated from the routes' zod schemas (the same that
 * validate requests and serialise answers), at `/docs/json`, with Swagger UI at `/docs`.
 * Registered before the routes, so its onRoute hook sees every one of them.
 */
export const openApiPlugin = fp(
  async (app: FastifyInstance) => {
    await app.register(swagger, {
      openapi: {
        openapi: "3.0.3",
        info: {
          title: "docpipe ingestion API",
          version: "1",
          description:
            "Submit S3 prefixes of PDFs as batches and follow them through the pipeline. Every route but /healthz, /readyz and /docs " +
            "needs an API key (x-api-key header or Authorization: Bearer). Each key has a usage plan: a token bucket over all its " +
            "requests (429 rate_limited with Retry-After) and a quota of documents per day or month (429 quota_exceeded with " +
            "Retry-After and X-Quota-Reset). Every error is `{ error: { code, message, details } }` (the Error schema).",
        },
        servers: [{ url: "/", description: "The ingestion service that serves this document" }],
        components: {
          securitySchemes: {
            apiKey: { type: "apiKey", in: "header", name: "x-api-key" },
            bearer: { type: "http", scheme: "bearer" },
          },
        },
        security: [{ apiKey: [] }, { bearer: [] }],
      },
      transform: createJsonSchemaTransform({ skipList: [] }),
      transformObject: (document) => usedComponentsOnly(transformObject(document)),
    });
    await app.register(swaggerUi, { routePrefix: "/docs" });
  },
  { name: "openapi" },
);
