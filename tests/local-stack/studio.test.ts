// `pnpm studio` with DATABASE_URL set (Aurora through a tunnel, on AWS) opens that database and
// neither looks for nor starts a local stack.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { freePort, LOCAL_DIR, openStudio } from "@docpipe/local-stack";
import { createLogger } from "@docpipe/queue";
import { expect, onTestFinished, test } from "../fixtures/index.js";
import { waitFor } from "../fixtures/wait.js";

test("Studio opens the database it is given and starts no local stack", async ({ databaseUrl }) => {
  const name = `studio-${randomBytes(3).toString("hex")}`;
  const port = await freePort();
  const stop = new AbortController();
  const studio = openStudio({ databaseUrl, name, port, signal: stop.signal, logger: createLogger({ service: "studio", level: "silent" }) });
  onTestFinished(async () => {
    stop.abort();
    await studio.catch(() => undefined);
  });
  const page = await waitFor(
    "Studio to answer",
    async () => {
      const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
      return res?.ok ? await res.text() : undefined;
    },
    90_000,
  );
  expect(page).toMatch(/<html/i);
  // A stack of this name would have a directory of its own under .local.
  expect(existsSync(path.join(LOCAL_DIR, name))).toBe(false);
  stop.abort();
  await studio;
});
