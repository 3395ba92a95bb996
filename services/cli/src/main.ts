#!/usr/bin/env node
import { ApiError } from "./api.js";
import { execute } from "./cli.js";
import { EXIT } from "./context.js";

execute(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof ApiError) console.error(`docpipe: ${e.code}: ${e.message}`);
    else console.error("docpipe:", e instanceof Error ? e.message : e);
    process.exit(EXIT.failed);
  },
);
