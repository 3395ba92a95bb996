// What the images do, without Docker: each service's production bundle is built the way
// docker/Dockerfile builds it (build.ts runs the Dockerfile's own commands), then started the
// way its container starts (entrypoint, WORKDIR, ENV, the environment ECS gives the task) from a
// directory outside the repository, against the local stack. The bundles migrate an empty
// database, process a batch end to end and stop on SIGTERM.
import { setTimeout as sleep } from "node:timers/promises";
import { readdir, readFile, readlink, realpath, stat } from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { createPrisma } from "@docpipe/db";
import { generatePdf, PAGE_SIZES, type CorpusPageSpec } from "@docpipe/pdf";
import { uploadFile } from "@docpipe/queue";
import { afterAll, beforeAll, onTestFailed } from "vitest";
import { deployables, imagePackages } from "@docpipe/infra/services";
import { pngSize } from "../e2e/support.js";
import { freePort, startEcsAgent } from "@docpipe/local-stack";
import { describe, expect, onTestFinished, test } from "../fixtures/index.js";
import { buildBundles, nodeModulesAbove, REPO_ROOT, type Bundles } from "./build.js";
import { containerEnv, runContainer, startContainer, type Container } from "./container.js";

/** ECS's stopTimeout for every service (infra/lib/pipeline-service.ts): SIGKILL comes after it. */
const STOP_TIMEOUT_MS = 120_000;
const BATCH_TIMEOUT_MS = 120_000;
/** Low, to keep 14 pages quick on 2 cores; the deployment's DPI is just another variable. */
const DPI = 50;

let bundles: Bundles;
/** The migrate task's bundle. */
const migrateBundle = () => bundles.services.get("migrate")!;

// KEEP_IMAGE_BUNDLES=1 keeps the bundles (and build.log) after the run; REUSE_IMAGE_BUNDLES=<dir>
// runs the tests on bundles kept by an earlier run instead of building them again.
const reuse = process.env.REUSE_IMAGE_BUNDLES;

beforeAll(async () => {
  bundles = await buildBundles(imagePackages, { ...(reuse && { reuse }) });
}, 900_000);

afterAll(async () => {
  if (process.env.KEEP_IMAGE_BUNDLES || reuse) {
    console.error(`image bundles kept in ${bundles?.root}`);
    return;
  }
  await bundles?.remove();
});


/** Every symlink under dir that resolves to something outside it (the image would not have it). */
async function linksOutOf(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isSymbolicLink()) {
        const target = await realpath(p).catch(() => undefined); // dangling: nothing to reach
        if (target && path.relative(dir, target).startsWith("..")) out.push(`${path.relative(dir, p)} -> ${await readlink(p)}`);
      } else if (e.isDirectory()) {
        await walk(p);
      }
    }
  };
  await walk(dir);
  return out;
}

describe("service images (docker/Dockerfile), built and run without Docker", () => {
  test("each bundle holds everything it runs: no link out of it, no node_modules above it", async ({ annotate }) => {
    await annotate(`build steps (ms): ${JSON.stringify(bundles.timings)}`);
    const roots = [...[...bundles.services.values()].map((r) => r.appDir), bundles.model.appDir];
    for (const dir of roots) {
      expect(nodeModulesAbove(dir), dir).toEqual([]);
      expect(await linksOutOf(dir), dir).toEqual([]);
    }
    for (const [service, runtime] of bundles.services) {
      expect((await stat(path.join(runtime.cwd, "dist/main.js"))).isFile(), service).toBe(true);
      expect(path.relative(REPO_ROOT, runtime.appDir).startsWith(".."), service).toBe(true);
    }
    expect((await stat(path.join(bundles.model.cwd, "dist/main.js"))).isFile()).toBe(true);
  });

  test("runs the bundles on the Node major the images are built on", async () => {
    const image = /^ARG NODE_IMAGE=node:(\d+)\.(\d+)\.(\d+)-/m.exec(await readFile(path.join(REPO_ROOT, "docker/Dockerfile"), "utf8"));
    expect(image, "docker/Dockerfile's NODE_IMAGE").not.toBeNull();
    // The containers get this process's Node first on PATH (containerEnv), as the image has its own.
    const env = await containerEnv(migrateBundle(), path.join(bundles.root, "home", "node-version"), {});
    const { stdout } = await promisify(execFile)("node", ["--version"], { env });
    expect(stdout.trim().split(".")[0]).toBe(`v${image![1]}`);
    expect(process.versions.node.split(".")[0]).toBe(image![1]);
  });

  test("only the migrate bundle carries the Prisma CLI; no bundle carries TypeScript", async () => {
    const packagesIn = async (dir: string) => (await readdir(path.join(dir, "node_modules/.pnpm"))).map((p) => p.replace(/@\d.*$/, ""));
    for (const [service, runtime] of bundles.services) {
      const found = await packagesIn(runtime.cwd);
      expect(found, service).toContain("@prisma+client");
      expect(found.filter((p) => p === "typescript" || p === "pdf-lib"), service).toEqual([]);
      expect(found.filter((p) => p === "prisma" || p === "@prisma+engines"), service).toEqual(service === "migrate" ? ["@prisma+engines", "prisma"] : []);
    }
  });

  test(
    "the migrate bundle migrates an empty database; the service bundles process a batch on it and stop on SIGTERM",
    { timeout: 400_000 },
    async ({ stack, annotate }) => {
      const containers: Container[] = [];
      onTestFinished(async () => {
        for (const c of containers) c.kill();
        await Promise.all(containers.map((c) => c.exited));
      });
      onTestFailed(() => {
        for (const c of containers) console.error(`--- ${c.name} output (last 8 KiB) ---\n${c.output().slice(-8192)}`);
      });

      // An empty database, reached the way ECS tasks reach Aurora: DB_* variables that the
      // entrypoint turns into DATABASE_URL (without TLS: the local Postgres has none).
      const dbName = `images_${randomBytes(4).toString("hex")}`;
      await stack.prisma.$executeRawUnsafe(`CREATE DATABASE ${dbName}`);
      const stackUrl = new URL(stack.databaseUrl);
      const dbEnv = {
        DB_HOST: stackUrl.hostname,
        DB_PORT: stackUrl.port,
        DB_NAME: dbName,
        DB_USERNAME: decodeURIComponent(stackUrl.username),
        DB_PASSWORD: decodeURIComponent(stackUrl.password),
        DB_SSL_PARAMS: "sslmode=disable",
      };
      const databaseUrl = Object.assign(new URL(stack.databaseUrl), { pathname: `/${dbName}` }).toString();
      const prisma = createPrisma({ databaseUrl, poolMax: 2 });
      onTestFinished(() => prisma.$disconnect());
      const home = (name: string) => path.join(bundles.root, "home", name);

      const phases: Record<string, number> = {};
      let phaseStart = Date.now();
      const phase = (name: string) => {
        phases[name] = Date.now() - phaseStart;
        phaseStart = Date.now();
      };

      // --- migrate: the one-shot task ECS runs before every deployment. Prisma 6.19's CLI lingers
      // ~10 s after success (packages/db/src/migrate.ts), so the second run, a no-op as on every
      // redeploy, goes on while the services start and work, as a redeploy's migration would.
      const migrationDirs = (await readdir(path.join(migrateBundle().cwd, "dist/prisma/migrations"), { withFileTypes: true }))
        .filter((e) => e.isDirectory())
        .map((e) => e.name)
        .sort();
      expect(migrationDirs.length).toBeGreaterThan(0);
      const migrateEnv = await containerEnv(migrateBundle(), home("migrate"), dbEnv);
      const applied = async () =>
        (
          await prisma.$queryRaw<{ migration_name: string }[]>`
            SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name`
        ).map((r) => r.migration_name);
      const first = await runContainer("migrate", migrateBundle(), migrateEnv, 120_000);
      expect(first.code, first.output).toBe(0);
      expect(first.output).toContain("All migrations have been successfully applied.");
      expect(await applied()).toEqual(migrationDirs);
      phase("migrate");
      const again = runContainer("migrate again", migrateBundle(), migrateEnv, 120_000);

      // --- the model image, started as SageMaker starts it (`<image> serve`, port from the
      // environment), two processes sharing the port; it reads the PNGs with the credentials the
      // SDK finds (on SageMaker, the endpoint's execution role).
      const { DATABASE_URL: _fromStack, ...stackEnv } = stack.env;
      const modelPort = await freePort();
      const modelUrl = `http://127.0.0.1:${modelPort}`;
      const s3Env = Object.fromEntries(
        ["AWS_REGION", "AWS_ENDPOINT_URL_S3", "S3_FORCE_PATH_STYLE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"].map((k) => [k, stack.env[k]!]),
      );
      const model = startContainer(
        "model",
        { ...bundles.model, command: [...bundles.model.command, "serve"] },
        await containerEnv(bundles.model, home("model"), { ...s3Env, PORT: String(modelPort), MODEL_WORKERS: "2" }),
      );
      containers.push(model);
      for (let t = Date.now(); !(await fetch(`${modelUrl}/ping`).then((r) => r.ok, () => false)); await sleep(200)) {
        if (!model.running() || Date.now() - t > 60_000) throw new Error(`the model never answered /ping:\n${model.output().slice(-4000)}`);
      }
      phase("model answers /ping");

      // --- the services, each as its ECS task runs it.
      const port = await freePort();
      const serviceEnv: Record<string, Record<string, string>> = {
        ingestion: { PORT: String(port) },
        "inference-client": { MODEL_URL: `${modelUrl}/invocations` },
        "page-converter": { DPI: String(DPI) },
        failsafe: { DPI: String(DPI) },
      };
      // Every worker serves its liveness for the health check, each on its own port (one host
      // here); the large splitter has an ECS agent to take scale-in protection from.
      const agent = await startEcsAgent();
      onTestFinished(() => agent.close());
      const workers = deployables.filter((d) => d.consumes === "dead-letter" || d.consumes.length > 0).map((d) => d.id);
      for (const id of workers) serviceEnv[id] = { ...serviceEnv[id], HEALTH_PORT: String(await freePort()) };
      serviceEnv["splitter-large"] = { ...serviceEnv["splitter-large"], ECS_AGENT_URI: agent.uri };
      const envOf = new Map<string, Record<string, string>>();
      for (const d of deployables) {
        const runtime = bundles.services.get(d.package)!;
        const env = await containerEnv(runtime, home(d.id), {
          ...stackEnv,
          ...dbEnv,
          LOG_LEVEL: "info",
          ...d.environment,
          ...serviceEnv[d.id],
        });
        envOf.set(d.id, env);
        containers.push(startContainer(d.id, runtime, env));
      }
      const byId = (id: string) => containers.find((c) => c.name === id)!;
      const ingestion = byId("ingestion");
      const api = `http://127.0.0.1:${port}`;
      const stillRunning = () => {
        const dead = containers.filter((c) => !c.running());
        if (dead.length) throw new Error(`exited early: ${dead.map((c) => `${c.name}\n${c.output().slice(-4000)}`).join("\n")}`);
      };

      // Liveness, readiness, and the image's HEALTHCHECK script against the bundle.
      for (let t = Date.now(); ; await sleep(200)) {
        stillRunning();
        const ok = await fetch(`${api}/healthz`).then((r) => r.ok, () => false);
        if (ok) break;
        if (Date.now() - t > 60_000) throw new Error(`ingestion never answered /healthz:\n${ingestion.output().slice(-4000)}`);
      }
      phase("ingestion healthy");
      const ready = await fetch(`${api}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ status: "ready" });
      // Docker and ECS run the check inside the container: with its environment (SERVICE, PORT, HEALTH_PORT).
      const healthcheck = (id = "ingestion") =>
        promisify(execFile)(bundles.healthcheck, { env: envOf.get(id)! }).then(
          () => 0,
          (e: { code?: number }) => e.code ?? -1,
        );
      expect(await healthcheck()).toBe(0);
      // Each worker's poll loop is turning: its /livez answers and the same script passes.
      for (const id of workers) {
        for (let t = Date.now(); (await healthcheck(id)) !== 0; await sleep(200)) {
          stillRunning();
          if (Date.now() - t > 60_000) throw new Error(`${id} never passed its health check:\n${byId(id).output().slice(-4000)}`);
        }
      }
      phase("workers live");

      // --- a tiny batch: a small document (3 pages) and one large by page count (12 pages: the
      // large splitter cuts chunks of 10 + 2), so every worker has something to do.
      const prefix = `images/${randomBytes(3).toString("hex")}/`;
      const [w, h] = PAGE_SIZES.letter;
      const spec = (n: number): CorpusPageSpec[] => Array.from({ length: n }, (_, i) => ({ widthPt: w, heightPt: h, content: i % 2 ? "image" : "text" }));
      const files = { "three.pdf": 3, "twelve.pdf": 12 };
      for (const [name, pages] of Object.entries(files)) {
        const file = await generatePdf(path.join(bundles.root, name), spec(pages));
        await uploadFile(stack.s3, stack.stagingBucket, prefix + name, file.path, "application/pdf");
      }
      // The first key, as the README makes it: `docpipe keys create` in the admin task, which is the
      // CLI's image run with a command, reaching the database the way every task does (DB_*).
      const cli = bundles.services.get("cli")!;
      const created = await runContainer(
        "admin keys create",
        { ...cli, command: [...cli.entrypoint, "node", "dist/main.js", "keys", "create", "--name", "first", "--owner", "tests", "--plan", "standard", "--bucket", stack.stagingBucket, "--json"] },
        await containerEnv(cli, home("admin"), { ...stackEnv, ...dbEnv, SERVICE_NAME: "admin" }),
        120_000,
      );
      expect(created.code, created.output).toBe(0);
      const { key } = JSON.parse(created.output.slice(created.output.indexOf("{"), created.output.lastIndexOf("}") + 1)) as { key: string };
      expect(await prisma.apiKey.count()).toBe(1);
      const auth = { "x-api-key": key };
      const submitted = await fetch(`${api}/batches`, {
        method: "POST",
        headers: { "content-type": "application/json", ...auth },
        body: JSON.stringify({ bucket: stack.stagingBucket, prefixes: [prefix], label: "images" }),
      });
      const submitBody = (await submitted.json()) as { batchId: string };
      expect(submitted.status, JSON.stringify(submitBody)).toBe(202);
      const { batchId } = submitBody;
      const started = Date.now();
      let status: { state: string; pages?: Record<string, number> };
      for (;;) {
        stillRunning();
        status = (await (await fetch(`${api}/batches/${batchId}`, { headers: auth })).json()) as typeof status;
        if (status.state === "completed" || status.state === "failed") break;
        if (Date.now() - started > BATCH_TIMEOUT_MS) throw new Error(`batch not finished in ${BATCH_TIMEOUT_MS} ms: ${JSON.stringify(status)}`);
        await sleep(300);
      }
      phase("batch of 15 pages");
      const second = await again;
      expect(second.code, second.output).toBe(0);
      expect(second.output).toContain("No pending migrations to apply.");
      expect(await applied()).toEqual(migrationDirs);
      phase("migrate again");
      expect(status).toMatchObject({ state: "completed", pages: { expected: 15, done: 15, failed: 0 } });

      const documents = await prisma.document.findMany({ where: { batchId }, include: { pages: { include: { result: true } } } });
      expect(documents.map((d) => [d.key, d.state, d.class, d.pageCount]).sort()).toEqual([
        [`${prefix}three.pdf`, "done", "small", 3],
        [`${prefix}twelve.pdf`, "done", "large", 12],
      ]);
      for (const d of documents) {
        expect(d.pages.map((p) => p.pageNumber).sort((a, b) => a - b)).toEqual(Array.from({ length: d.pageCount! }, (_, i) => i + 1));
        for (const p of d.pages) {
          expect(p.state).toBe("done");
          expect(p.result).not.toBeNull();
          const png = await stack.s3.send(new GetObjectCommand({ Bucket: stack.workBucket, Key: p.imageKey! }));
          const size = pngSize(await png.Body!.transformToByteArray());
          expect(size).toEqual({ width: Math.round((w / 72) * DPI), height: Math.round((h / 72) * DPI) });
        }
      }

      // --- the reconciler, as its schedule runs it on AWS (infra/lib/reconciler-task.ts): one pass with
      // the services' settings, then exit 0. Nothing was lost, so it re-sends nothing.
      const reconciler = bundles.services.get("reconciler")!;
      const pass = await runContainer(
        "reconciler",
        reconciler,
        await containerEnv(reconciler, home("reconciler"), { ...stackEnv, ...dbEnv, LOG_LEVEL: "info", RECONCILE_INTERVAL_SECONDS: "0" }),
        120_000,
      );
      expect(pass.code, pass.output).toBe(0);
      const passLines = pass.output.split("\n");
      expect(passLines.filter((l) => /^\{"level":(50|60)\b/.test(l))).toEqual([]);
      const passMetrics = passLines.filter((l) => l.startsWith('{"_aws"')).map((l) => JSON.parse(l) as { ReconcilePasses?: number; UnitsReconciled?: number });
      expect(passMetrics.reduce((n, m) => n + (m.ReconcilePasses ?? 0), 0)).toBe(1);
      expect(passMetrics.reduce((n, m) => n + (m.UnitsReconciled ?? 0), 0)).toBe(0);
      phase("reconciler pass");

      // The large split ran under scale-in protection, released once it was done.
      expect(agent.requests.map((r) => r.ProtectionEnabled)).toEqual([true, false]);
      expect(agent.state().protectionEnabled).toBe(false);

      // Retries would hide a failure from the batch's outcome, not from the logs.
      const errors = containers.flatMap((c) => c.output().split("\n").filter((l) => /^\{"level":(50|60)\b/.test(l)).map((l) => `${c.name}: ${l}`));
      expect(errors).toEqual([]);

      // --- SIGTERM, as ECS sends it on scale-in or deployment: every service ends cleanly in time.
      phase("checks");
      const stops = await Promise.all(containers.map(async (c) => ({ name: c.name, ...(await c.stop(STOP_TIMEOUT_MS)) })));
      phase("stop");
      await annotate(`phases (ms): ${JSON.stringify(phases)}; exit after SIGTERM (ms): ${JSON.stringify(Object.fromEntries(stops.map((s) => [s.name, s.ms])))}`);
      for (const s of stops) expect({ name: s.name, code: s.code, signal: s.signal }).toEqual({ name: s.name, code: 0, signal: null });
      expect(await healthcheck()).not.toBe(0);

      // --- the metrics each service wrote (EMF lines on stdout, flushed at the latest on stop).
      const emf = (id: string) => {
        const sums: Record<string, number> = {};
        const values: Record<string, number> = {};
        for (const line of byId(id).output().split("\n").filter((l) => l.startsWith('{"_aws"'))) {
          const doc = JSON.parse(line) as Record<string, unknown> & { Service: string };
          expect(doc.Service).toBe(id);
          for (const [k, v] of Object.entries(doc)) {
            if (typeof v === "number") sums[k] = (sums[k] ?? 0) + v;
            if (Array.isArray(v)) values[k] = (values[k] ?? 0) + v.length;
          }
        }
        return { sums, values };
      };
      for (const id of ["splitter-small", "page-converter", "inference-client"]) {
        expect(emf(id).sums.Pages, id).toBe(15);
      }
      expect(emf("page-converter").sums.MessagesSucceeded).toBe(15);
      expect(emf("page-converter").values.StageDuration).toBe(15);
      expect(emf("inference-client").values.ModelLatency).toBe(15);
      expect(emf("inference-client").sums.BreakerOpen ?? 0).toBe(0);
      expect(emf("splitter-large").sums.MessagesSucceeded).toBe(1);
      expect(emf("ingestion").sums.StalledBatches ?? 0).toBe(0);
    },
  );
});
