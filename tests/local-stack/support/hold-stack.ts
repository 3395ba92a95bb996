// Starts a local stack (named when a name is given), prints where its pieces run, and waits to be signalled.
import fs from "node:fs/promises";
import path from "node:path";
import { start } from "@docpipe/local-stack";

const name = process.argv[2];
const stack = await start(name ? { name, ephemeral: false } : {});
const state = JSON.parse(await fs.readFile(path.join(stack.dataDir, "stack.json"), "utf8")) as { postgresPid: number; watchdogPid: number };
if (name) await stack.prisma.$executeRawUnsafe(`CREATE TABLE IF NOT EXISTS kept (note text)`).then(() => stack.prisma.$executeRawUnsafe(`INSERT INTO kept VALUES ('written before the kill')`));
process.stdout.write(`${JSON.stringify({ dataDir: stack.dataDir, postgresPid: state.postgresPid, watchdogPid: state.watchdogPid })}\n`);
setInterval(() => undefined, 60_000);
