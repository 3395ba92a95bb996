#!/usr/bin/env node
import { ApiError } from "./api.js";
import { execute } from "./cli.js";
import { EXIT } from "./context.js";
import { printable } from "./printable.js";

execute(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    // The API's and libraries' messages quote what was sent (prefixes, keys, paths): escaped, like every line we print.
    if (e instanceof ApiError) console.error(`docpipe: ${printable(e.code)}: ${printable(e.message)}`);
    else console.error(`docpipe: ${printable(e instanceof Error ? e.message : String(e))}`);
    process.exit(EXIT.failed);
  },
);
