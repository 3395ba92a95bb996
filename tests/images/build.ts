// Builds every image's production bundle the way docker/Dockerfile does, without Docker: a copy
// of the build context, the workspace stage's install, and the service-build stage's build and
// `pnpm deploy` for each service (the migrate task is one of them). The commands are read from the
// Dockerfile and run as written, with the image path (/out) mapped to directories under one temp dir.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { appendFile, copyFile, lstat, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { contextCopies, env as stageEnv, execForm, parseDockerfile, runs, stage, workdir, type Stage } from "./dockerfile.js";

export const REPO_ROOT = path.resolve(import.meta.dirname, "../..");

export interface ImageRuntime {
  /** Bundle directory: what the image holds at its WORKDIR's root (/app). */
  appDir: string;
  /** The WORKDIR, mapped into appDir. */
  cwd: string;
  /** ENTRYPOINT then CMD, tini dropped and image paths mapped to the repository's files. */
  command: string[];
  /** The ENTRYPOINT part of `command`: what a command override (ECS's containerOverrides) keeps. */
  entrypoint: string[];
  /** The image's ENV. */
  env: Record<string, string>;
}

export interface Bundles {
  /** Temp directory holding everything; removed by remove(). */
  root: string;
  /** By service directory name (SERVICE build arg), `migrate` included. */
  services: Map<string, ImageRuntime>;
  /** The reference model's endpoint image (target `model`). */
  model: ImageRuntime;
  /** The service image's HEALTHCHECK command, mapped to the repository's file. */
  healthcheck: string;
  /** Wall-clock ms of each step, for the test's report. */
  timings: Record<string, number>;
  /** Where the steps' output went. */
  logFile: string;
  remove(): Promise<void>;
}

export class BuildStepError extends Error {
  override readonly name = "BuildStepError";
}

const BUILD_STEP = /^pnpm --filter ("[^"]+"|\S+) build$/;

/** Paths Docker leaves out of the context (docker/Dockerfile.dockerignore), as a matcher. */
async function dockerignore(): Promise<(file: string) => boolean> {
  const patterns = (await readFile(path.join(REPO_ROOT, "docker/Dockerfile.dockerignore"), "utf8"))
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  if (patterns.some((p) => p.startsWith("!"))) throw new BuildStepError("Dockerfile.dockerignore exceptions (!) are not understood here");
  const regexes = patterns.map((p) => {
    const body = p
      .replace(/^\/+/, "")
      .split(/(\*\*\/|\*|\?)/)
      .map((part) => (part === "**/" ? "(?:.*/)?" : part === "*" ? "[^/]*" : part === "?" ? "[^/]" : part.replace(/[.+^${}()|[\]\\]/g, "\\$&")))
      .join("");
    return new RegExp(`^${body}$`);
  });
  // A pattern that matches a directory excludes everything in it.
  return (file) => {
    const parts = file.split("/");
    return parts.some((_, i) => {
      const prefix = parts.slice(0, i + 1).join("/");
      return regexes.some((r) => r.test(prefix));
    });
  };
}

function run(cmd: string, args: string[], opts: { cwd: string; env: Record<string, string>; logFile: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.stderr.on("data", (c: Buffer) => chunks.push(c));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      const out = Buffer.concat(chunks).toString("utf8");
      void appendFile(opts.logFile, `$ ${[cmd, ...args].join(" ")}   (in ${opts.cwd})\n${out}\n`).finally(() => {
        if (code === 0) resolve(out);
        else reject(new BuildStepError(`${[cmd, ...args].join(" ")} failed (${signal ?? `exit ${code}`}):\n${out.slice(-4000)}`));
      });
    });
  });
}

/** The files a clean checkout would send as the context: tracked and new files, minus .dockerignore. */
async function copyContext(dest: string): Promise<number> {
  const ignored = await dockerignore();
  const listed = await run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/" },
    logFile: "/dev/null",
  });
  const files = [...new Set(listed.split("\0").filter(Boolean))].filter((f) => !ignored(f));
  let copied = 0;
  for (const f of files) {
    const stat = await lstat(path.join(REPO_ROOT, f)).catch(() => undefined);
    if (!stat?.isFile()) continue; // deleted in the working tree, or a symlink/submodule (none here)
    await mkdir(path.dirname(path.join(dest, f)), { recursive: true });
    await copyFile(path.join(REPO_ROOT, f), path.join(dest, f));
    copied++;
  }
  return copied;
}

/** The environment a build step gets: the stage's ENV, without what only makes sense in Docker. */
function buildEnv(stages: Stage[]): Record<string, string> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      // What a parent `pnpm test` exports for its script, and vitest's own variables; the rest
      // (a CI's npm_config_store_dir, proxies) is the machine's pnpm configuration and stays.
      ([k, v]) =>
        v !== undefined &&
        !/^(npm_(command|lifecycle_|package_|config_user_agent|execpath|node_execpath)|PNPM_(PACKAGE_NAME|SCRIPT_SRC_DIR)|NODE_OPTIONS$|NODE_PATH$|VITEST)/.test(k),
    ),
  ) as Record<string, string>;
  // `pnpm exec vitest` puts the repository's node_modules/.bin on PATH: a tool the context's
  // install lacks must fail the build, not be found there.
  inherited.PATH = (inherited.PATH ?? "/usr/bin:/bin")
    .split(path.delimiter)
    .filter((p) => path.relative(REPO_ROOT, p).startsWith(".."))
    .join(path.delimiter);
  const image = stageEnv(stages, "workspace");
  // The image keeps pnpm's store in a BuildKit cache mount; here the machine's own store is the cache.
  delete image.npm_config_store_dir;
  return { ...inherited, ...image };
}

/** Replaces an image path (/out, /app) standing alone or as a path prefix in a shell command. */
const mapPath = (command: string, imagePath: string, hostPath: string) =>
  command.replace(new RegExp(`(?<=^|\\s)${imagePath.replace(/\//g, "\\/")}(?=/|\\s|$)`, "g"), hostPath);

function imageRuntime(stages: Stage[], name: string, appDir: string, vars: Record<string, string>): ImageRuntime {
  const files = contextCopies(stages, name);
  const [entry, ...entryArgs] = execForm(stages, name, "ENTRYPOINT");
  // tini is PID 1 in the image; here the test is the parent and signals the service directly.
  const afterTini = entry === "/usr/bin/tini" ? entryArgs.slice(entryArgs.indexOf("--") + 1) : [entry!, ...entryArgs];
  const entrypoint = afterTini.map((a) => (files.has(a) ? path.join(REPO_ROOT, files.get(a)!) : a));
  const dir = workdir(stages, name);
  if (!dir.startsWith("/app")) throw new BuildStepError(`stage ${name}: WORKDIR ${dir} is not under /app`);
  return {
    appDir,
    cwd: path.join(appDir, path.relative("/app", dir)),
    command: [...entrypoint, ...execForm(stages, name, "CMD")],
    entrypoint,
    env: stageEnv(stages, name, vars),
  };
}

/**
 * Builds the bundle of each service directory in `services`.
 * Takes minutes: call once per test file.
 */
export async function buildBundles(services: readonly string[], opts: { reuse?: string } = {}): Promise<Bundles> {
  if (opts.reuse) return describeBundles(services, opts.reuse);
  const root = await mkdtemp(path.join(tmpdir(), "docpipe-images-"));
  if (!path.relative(REPO_ROOT, root).startsWith("..")) {
    throw new BuildStepError(`the temp dir ${root} is inside the repository: set TMPDIR elsewhere so bundles cannot resolve its node_modules`);
  }
  const remove = () => rm(root, { recursive: true, force: true });
  try {
    const logFile = path.join(root, "build.log");
    const context = path.join(root, "context");
    const timings: Record<string, number> = {};
    const timed = async <T>(step: string, fn: () => Promise<T>): Promise<T> => {
      const t = Date.now();
      try {
        return await fn();
      } finally {
        timings[step] = Date.now() - t;
      }
    };
    const stages = parseDockerfile(await readFile(path.join(REPO_ROOT, "docker/Dockerfile"), "utf8"));
    const env = buildEnv(stages);
    const sh = (command: string, extra: Record<string, string> = {}) => run("sh", ["-c", command], { cwd: context, env: { ...env, ...extra }, logFile });

    await timed("copy context", () => copyContext(context));

    // Workspace stage: `npm install -g pnpm@…` is checked instead of run (the machine's pnpm must be
    // that version), and `pnpm fetch` fills a store this machine already has: --offline proves it.
    await timed("pnpm install", async () => {
      for (const command of runs(stage(stages, "workspace"))) {
        const pin = /^npm install -g pnpm@(\S+)$/.exec(command);
        if (pin) {
          const version = (await run("pnpm", ["--version"], { cwd: context, env, logFile })).trim();
          if (version !== pin[1]) throw new BuildStepError(`the image pins pnpm ${pin[1]}; this machine has ${version}`);
        } else if (command !== "pnpm fetch") {
          await sh(command);
        }
      }
    });

    // Service-build stage: its guard and deploy per service; the build (`pnpm --filter X... build`)
    // once with every service's filter, which builds the same packages without repeating shared ones.
    const [guard, buildAndDeploy, ...more] = runs(stage(stages, "service-build"));
    if (!guard || !buildAndDeploy || more.length > 0) throw new BuildStepError("service-build stage: expected a guard RUN and a build-and-deploy RUN");
    const steps = buildAndDeploy.split(/\s+&&\s+/);
    const build = steps.filter((s) => BUILD_STEP.test(s));
    if (build.length !== 1) throw new BuildStepError(`service-build stage: expected one "pnpm --filter … build" step in: ${buildAndDeploy}`);
    const filter = BUILD_STEP.exec(build[0]!)![1]!.replace(/^"|"$/g, "");
    const serviceDirs = new Map(services.map((s) => [s, path.join(root, "bundles", s)]));
    for (const s of services) await sh(guard, { SERVICE: s });
    await timed("build", () =>
      run("pnpm", [...services.flatMap((s) => ["--filter", filter.replace("${SERVICE}", s)]), "build"], { cwd: context, env, logFile }),
    );
    const bundleOut = (s: string) => serviceDirs.get(s)!;
    for (const s of services) {
      const deploy = steps
        .filter((x) => !BUILD_STEP.test(x))
        .map((x) => mapPath(x, "/out", bundleOut(s)))
        .join(" && ");
      await timed(`deploy ${s}`, () => sh(deploy, { SERVICE: s }));
    }
    const serviceCopy = stage(stages, "service").instructions.find((i) => i.op === "COPY" && i.args.includes("--from=service-build"));
    if (!serviceCopy || !/\s\/out \/app$/.test(serviceCopy.args)) throw new BuildStepError("service stage: expected COPY --from=service-build … /out /app");

    // Model-build stage: its one RUN (build and deploy of @docpipe/reference-model), /out mapped.
    const modelApp = path.join(root, "bundles", "model");
    await timed("deploy model", async () => {
      for (const command of runs(stage(stages, "model-build"))) await sh(mapPath(command, "/out", modelApp));
    });
    const modelCopy = stage(stages, "model").instructions.find((i) => i.op === "COPY" && i.args.includes("--from=model-build"));
    if (!modelCopy || !/\s\/out \/app$/.test(modelCopy.args)) throw new BuildStepError("model stage: expected COPY --from=model-build … /out /app");

    // Nothing in a bundle may lean on the build's workspace: the image has no /repo.
    await timed("remove context", () => rm(context, { recursive: true, force: true }));

    return { ...(await describeBundles(services, root)), timings };
  } catch (e) {
    if (!process.env.KEEP_IMAGE_BUNDLES) await remove();
    throw e;
  }
}

function healthcheckCommand(stages: Stage[]): string {
  const check = stage(stages, "service").instructions.find((i) => i.op === "HEALTHCHECK");
  const cmd = check && /\bCMD\s+(\[.*\])$/.exec(check.args);
  const argv: unknown = cmd ? JSON.parse(cmd[1]!) : undefined;
  if (!Array.isArray(argv) || argv.length !== 1 || typeof argv[0] !== "string") {
    throw new BuildStepError(`service stage: expected HEALTHCHECK … CMD ["<script>"], got ${check?.args}`);
  }
  const file = contextCopies(stages, "service").get(argv[0]);
  if (!file) throw new BuildStepError(`the HEALTHCHECK runs ${argv[0]}, which no COPY from the context puts there`);
  return path.join(REPO_ROOT, file);
}

/** The bundles a previous build left in root (KEEP_IMAGE_BUNDLES), as the images run them. */
async function describeBundles(services: readonly string[], root: string): Promise<Bundles> {
  const stages = parseDockerfile(await readFile(path.join(REPO_ROOT, "docker/Dockerfile"), "utf8"));
  return {
    root,
    services: new Map(services.map((s) => [s, imageRuntime(stages, "service", path.join(root, "bundles", s), { SERVICE: s })])),
    model: imageRuntime(stages, "model", path.join(root, "bundles", "model"), {}),
    healthcheck: healthcheckCommand(stages),
    timings: {},
    logFile: path.join(root, "build.log"),
    remove: () => rm(root, { recursive: true, force: true }),
  };
}

/** Every node_modules directory Node would search above `dir` (there must be none). */
export function nodeModulesAbove(dir: string): string[] {
  const found: string[] = [];
  for (let d = path.dirname(dir); ; d = path.dirname(d)) {
    if (existsSync(path.join(d, "node_modules"))) found.push(path.join(d, "node_modules"));
    if (path.dirname(d) === d) return found;
  }
}
