// Writes the OpenAPI document (JSON) to the file named, or prints it:
//   pnpm --filter @docpipe/ingestion openapi > openapi.json   (for client generators)
//   pnpm lint:openapi                                          (writes .local/openapi/ingestion.json, then redocly lint)
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { openApiDocument } from "./openapi-document.js";

const json = `${JSON.stringify(await openApiDocument(), null, 2)}\n`;
const out = process.argv[2];
if (out) {
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, json);
} else process.stdout.write(json);
