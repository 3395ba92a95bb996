// Property-based fuzzing of every route of a live `docpipe serve` (issue 13): bodies, path
// parameters, queries and headers full of NUL, lone surrogates, huge numbers, deep JSON and
// wrong types, sent as raw bytes. Whatever arrives: never a 5xx, every error in the API's
// error shape, no stack trace or server path in any answer.
//
// DOCPIPE_FUZZ_RUNS sets the requests per route (CI: 100; `DOCPIPE_FUZZ_RUNS=10000` for a long
// run), DOCPIPE_FUZZ_SEED replays a run (fast-check prints the seed and path of a failure),
// DOCPIPE_FUZZ_VERBOSE=1 prints how many answers had each status and code, per route.
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { ApiClient, execute, reportWithDocuments } from "@docpipe/cli";
import { REPO_ROOT } from "@docpipe/local-stack";
import { generatePdf, PAGE_SIZES } from "@docpipe/pdf";
import fc from "fast-check";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { waitForBatch } from "../fixtures/wait.js";
import { contentType, headers, json, query, rawJsonText, segment, text } from "./fuzz/arbitraries.js";
import { send, type RawRequest, type RawResponse } from "./fuzz/raw-http.js";
import { startServe, type Served } from "./fuzz/serve.js";

const RUNS = Number(process.env.DOCPIPE_FUZZ_RUNS ?? 100);
const SEED = process.env.DOCPIPE_FUZZ_SEED === undefined ? undefined : Number(process.env.DOCPIPE_FUZZ_SEED);
/** Generous per request (a 40,000-deep body, a listing's bucket check): a hang fails the run, a slow machine should not. */
const TIMEOUT = Math.max(300_000, RUNS * 200);
const STACK = `fuzz-${process.pid}`;

let served: Served;
let apiKey: string;
let batchId: string;
let documentId: string;
let stagingBucket: string;

beforeAll(async () => {
  served = await startServe(STACK);
  // The way a person or a client library gets a key for the local server.
  await served.docpipe("plans", "set", "--name", "fuzz", "--rate", "1000000", "--burst", "1000000");
  apiKey = JSON.parse(await served.docpipe("keys", "create", "--name", "fuzz", "--owner", "fuzz", "--plan", "fuzz", "--bucket", "*", "--json")).key;
  // One real batch, so that routes with a valid id answer 200 and their schemas are checked against real rows.
  stagingBucket = served.env.STAGING_BUCKET!;
  const dir = await mkdtemp(join(tmpdir(), "docpipe-fuzz-"));
  try {
    const pdf = join(dir, "one.pdf");
    await generatePdf(pdf, [{ widthPt: PAGE_SIZES.letter[0], heightPt: PAGE_SIZES.letter[1], content: "text" }]);
    const s3 = new S3Client({
      region: "us-east-1",
      endpoint: served.env.AWS_ENDPOINT_URL_S3!,
      forcePathStyle: true,
      credentials: { accessKeyId: served.env.AWS_ACCESS_KEY_ID!, secretAccessKey: served.env.AWS_SECRET_ACCESS_KEY! },
    });
    await s3.send(new PutObjectCommand({ Bucket: stagingBucket, Key: "fixture/one.pdf", Body: await readFile(pdf) }));
    s3.destroy();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const api = new ApiClient(served.url, apiKey);
  batchId = (await api.submit({ bucket: stagingBucket, prefixes: ["fixture/"], label: "fuzz \u001b[2J" })).batchId;
  expect((await waitForBatch(api, batchId)).state).toBe("completed");
  const docs = (await (await fetch(`${served.url}/batches/${batchId}/documents`, { headers: { "x-api-key": apiKey } })).json()) as { items: { id: string }[] };
  documentId = docs.items[0]!.id;
}, 300_000);

afterAll(async () => {
  const code = await served?.stop();
  expect(code).toBe(0);
}, 90_000);

/** Anything that looks like a stack trace, a server file path or Node internals. */
const LEAKS = [/\n\s+at\s/, /\bat [^\s(]+ \(.*:\d+:\d+\)/, /node:internal/, /node_modules/, new RegExp(REPO_ROOT.replace(/[/.]/g, "\\$&"))];

/** The properties every answer has, whatever was sent. */
function check(req: RawRequest, res: RawResponse): void {
  const what = `${req.method} ${req.target.slice(0, 300)} -> ${res.status} ${res.text.slice(0, 300)}`;
  if (res.status === 0) throw new Error(`no HTTP answer: ${what}`);
  if (res.status >= 500) throw new Error(`a 5xx: ${what}`);
  for (const leak of LEAKS) if (leak.test(res.text)) throw new Error(`the answer leaks ${leak}: ${what}`);
  if (res.status < 400 || req.method === "HEAD") return;
  let body: unknown;
  try {
    body = JSON.parse(res.text);
  } catch {
    throw new Error(`an error that is not JSON: ${what}`);
  }
  const error = (body as { error?: Record<string, unknown> }).error;
  const shaped =
    body !== null &&
    typeof body === "object" &&
    Object.keys(body).join() === "error" &&
    error !== undefined &&
    Object.keys(error).sort().join() === "code,details,message" &&
    typeof error.code === "string" &&
    typeof error.message === "string";
  if (!shaped) throw new Error(`an error outside the API's shape: ${what}`);
}

/** Sends each generated request and checks its answer, RUNS times; returns how many answers had each status and code. */
async function fuzz(request: fc.Arbitrary<RawRequest>): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  await fc.assert(
    fc.asyncProperty(request, async (req) => {
      const res = await send(served.port, req);
      check(req, res);
      const code = res.status >= 400 && req.method !== "HEAD" ? ` ${(JSON.parse(res.text) as { error: { code: string } }).error.code}` : "";
      seen[`${res.status}${code}`] = (seen[`${res.status}${code}`] ?? 0) + 1;
    }),
    { numRuns: RUNS, ...(SEED !== undefined && { seed: SEED }), interruptAfterTimeLimit: TIMEOUT - 30_000, markInterruptAsFailure: true },
  );
  if (process.env.DOCPIPE_FUZZ_VERBOSE) console.error(JSON.stringify(Object.fromEntries(Object.entries(seen).sort((a, b) => b[1] - a[1]))));
  return seen;
}

const ids = () => segment([batchId, documentId]);
const withQuery = (path: string, q: string) => (q ? `${path}?${q}` : path);
/** A body for a JSON route: the fields of POST /batches with hostile values and types, unknown fields, raw JSON, not JSON. */
const body = () =>
  fc.oneof(
  {
    // Nearly right: a real bucket and prefixes, so that the checks past the schema (allow-list, S3, the listing) run too.
    weight: 3,
    arbitrary: fc
      .record({ prefixes: fc.array(fc.oneof(fc.constantFrom("fuzz/", "nothing/"), text), { minLength: 1, maxLength: 3 }), label: fc.option(text) })
      .map(({ prefixes, label }) => JSON.stringify({ bucket: stagingBucket, prefixes, ...(label !== null && { label }) })),
  },
  {
    weight: 4,
    arbitrary: fc.tuple(fc
      .record(
        {
          bucket: fc.oneof(fc.constantFrom(stagingBucket, "docpipe-work", "no-such-bucket-here"), text, json),
          prefixes: fc.oneof(fc.array(fc.oneof(fc.constantFrom("fuzz/", "nothing/", "fixture/x/"), text), { maxLength: 4 }), json),
          label: fc.oneof(text, json),
          onTooLarge: fc.oneof(fc.constantFrom("reject", "split"), json),
          onDamagedPage: fc.oneof(fc.constantFrom("flag", "fail"), json),
          skipAlreadyProcessed: fc.oneof(fc.boolean(), json),
        },
        { requiredKeys: [] },
      ), fc.dictionary(text, json, { maxKeys: 2 }))
      .map(([known, unknown]) => JSON.stringify({ ...unknown, ...known })),
  },
  { weight: 2, arbitrary: rawJsonText },
  { weight: 1, arbitrary: json.map((v) => JSON.stringify(v) ?? "null") },
  { weight: 1, arbitrary: text },
  );
const methods = fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS");

describe("the CLI on a live docpipe serve", () => {
  test("docpipe report prints a label holding terminal escapes escaped, and --report-json's reader gets every document", async () => {
    const out: string[] = [];
    const sink = { write: (s: string) => out.push(s), isTTY: false } as unknown as NodeJS.WriteStream;
    const env = { DOCPIPE_API_URL: served.url, DOCPIPE_API_KEY: apiKey };
    expect(await execute(["report", batchId], { stdout: sink, stderr: sink, env })).toBe(0);
    expect(out.join("")).toContain("(fuzz \\x1b[2J)");
    expect(out.join("")).not.toContain("\u001b");
    const report = await reportWithDocuments(new ApiClient(served.url, apiKey), batchId);
    expect(report.perDocument.map((d) => d.documentId)).toEqual([documentId]);
  });
});

describe("every route of a live docpipe serve, fuzzed", () => {
  test("POST /batches: bodies, content types and headers", { timeout: TIMEOUT }, async () => {
    await fuzz(
      fc.record({ b: body(), type: contentType, h: headers(apiKey) }).map(({ b, type, h }) => ({
        method: "POST",
        target: "/batches",
        headers: [...h, ...(type === undefined ? [] : ([["content-type", type]] as [string, string][]))],
        body: b,
      })),
    );
  });

  test("POST /batches/:id/retry-failed: ids, bodies and headers", { timeout: TIMEOUT }, async () => {
    await fuzz(
      fc.record({ id: ids(), b: fc.option(body()), h: headers(apiKey) }).map(({ id, b, h }) => ({
        method: "POST",
        target: `/batches/${id}/retry-failed`,
        headers: b === null ? h : [...h, ["content-type", "application/json"]],
        ...(b !== null && { body: b }),
      })),
    );
  });

  for (const [route, path, q] of [
    ["GET /batches/:id", (id: string) => `/batches/${id}`, query(["x"], {})],
    ["GET /batches/:id/documents", (id: string) => `/batches/${id}/documents`, query(["state", "limit", "cursor"], { state: ["queued", "done", "failed"], limit: ["1", "1000", "1001", "0", "-1", "1e3", "2.5"], cursor: ["eyJrIjoiYSJ9", "eyJrIjoiXHUwMDAwIn0"] })],
    ["GET /batches/:id/report", (id: string) => `/batches/${id}/report`, query(["documents", "limit", "cursor"], { documents: ["true", "false", "TRUE", "1"], limit: ["1", "1000", "1001"], cursor: ["eyJrIjoiYSJ9", "eyJrIjoiXHVkODAwIn0"] })],
    ["GET /documents/:id", (id: string) => `/documents/${id}`, query(["x"], {})],
  ] as const) {
    test(`${route}: ids, queries and headers`, { timeout: TIMEOUT }, async () => {
      await fuzz(fc.record({ id: ids(), q, h: headers(apiKey) }).map(({ id, q: qs, h }) => ({ method: "GET", target: withQuery(path(id), qs), headers: h })));
    });
  }

  test("GET /usage, /healthz, /readyz and /docs/json: queries and headers", { timeout: TIMEOUT }, async () => {
    await fuzz(
      fc
        .record({ path: fc.constantFrom("/usage", "/healthz", "/readyz", "/docs/json"), q: query(["days"], { days: ["1", "30", "-1"] }), h: headers(apiKey) })
        .map(({ path, q, h }) => ({ method: "GET", target: withQuery(path, q), headers: h })),
    );
  });

  test("any method on any path, known and unknown", { timeout: TIMEOUT }, async () => {
    await fuzz(
      fc
        .record({
          method: methods,
          path: fc.oneof(
            fc.constantFrom("/batches", "/usage", "/healthz", "/docs", "/docs/", "/docs/static/index.html", "//batches", "/batches/", "/", "*"),
            ids().map((id) => `/batches/${id}/report`),
            fc.array(segment([]), { minLength: 1, maxLength: 4 }).map((s) => `/${s.join("/")}`),
          ),
          h: headers(apiKey),
          b: fc.option(body()),
        })
        .map(({ method, path, h, b }) => ({
          method,
          target: path,
          headers: b === null ? h : [...h, ["content-type", "application/json"]],
          ...(b !== null && { body: b }),
        })),
    );
  });
});
