// Starts a local stack, prints where its pieces run, and waits to be signalled.
import fs from "node:fs/promises";
import path from "node:path";
import { start } from "@docpipe/local-stack";

const stack = await start();
const state = JSON.parse(await fs.readFile(path.join(stack.dataDir, "stack.json"), "utf8")) as { postgresPid: number };
process.stdout.write(`${JSON.stringify({ dataDir: stack.dataDir, postgresPid: state.postgresPid })}\n`);
setInterval(() => undefined, 60_000);
