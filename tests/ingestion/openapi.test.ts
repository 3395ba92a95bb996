// The OpenAPI document a client generator reads (GET /docs/json), generated from the routes'
// zod schemas: it passes `redocly lint` (recommended-strict, as `pnpm lint:openapi` runs it)
// and has what generators need: servers, an operationId per operation, the status codes the
// routes answer, and one shared Error schema.
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { openApiDocument } from "@docpipe/ingestion";
import { REPO_ROOT } from "@docpipe/local-stack";
import { beforeAll, describe, expect, test } from "vitest";

interface Operation {
  operationId?: string;
  responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }>;
}
interface OpenApi {
  servers?: { url: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, { properties?: Record<string, { required?: string[]; properties?: object }> }> };
}

let doc: OpenApi;
const operations = () => Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })));

beforeAll(async () => {
  doc = (await openApiDocument()) as OpenApi;
});

describe("the ingestion API's OpenAPI document", () => {
  test("passes redocly lint with no error and no warning", { timeout: 60_000 }, async () => {
    // Where `pnpm lint:openapi` writes it: .redocly.lint-ignore.yaml names its two health routes.
    const file = join(REPO_ROOT, ".local/openapi/ingestion.json");
    await mkdir(join(REPO_ROOT, ".local/openapi"), { recursive: true });
    await writeFile(file, JSON.stringify(doc, null, 2));
    const { code, output } = await new Promise<{ code: number; output: string }>((resolve) => {
      execFile(
        join(REPO_ROOT, "node_modules/.bin/redocly"),
        ["lint", ".local/openapi/ingestion.json"],
        { cwd: REPO_ROOT, env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" }, timeout: 50_000 },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
      );
    });
    expect(output).toContain("Your API description is valid");
    expect(output).not.toMatch(/warning|error/i);
    expect(code).toBe(0);
  });

  test("names its server and gives every operation a unique operationId", () => {
    expect(doc.servers?.length).toBeGreaterThan(0);
    const ids = operations().map(({ op }) => op.operationId);
    expect(ids.every((id) => typeof id === "string" && id.length > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  test("documents retry-failed's 202, a status whose required properties are defined, and one shared Error schema", () => {
    expect(Object.keys(doc.paths["/batches/{id}/retry-failed"]!.post!.responses)).toContain("202");
    expect(Object.keys(doc.paths["/batches/{id}/retry-failed"]!.post!.responses)).not.toContain("200");
    const documents = doc.components.schemas.BatchStatus!.properties!.documents!;
    for (const state of documents.required ?? []) expect(documents.properties).toHaveProperty(state);
    for (const { op } of operations()) {
      for (const [status, response] of Object.entries(op.responses)) {
        if (Number(status) >= 400) expect(response.content?.["application/json"]?.schema.$ref).toBe("#/components/schemas/Error");
      }
    }
  });
});
