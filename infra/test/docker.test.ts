import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { dlqName, queues } from "@docpipe/queue";
import { serviceIds } from "../lib/config.js";
import { URL_UNSAFE } from "../lib/database.js";
import { HEALTHCHECK_SCRIPT, repoRoot } from "../lib/images.js";
import { imagePackages } from "../lib/services.js";

// The images cannot be built here (no Docker engine); these check what the image and the
// compose file promise against the code they package.
const read = (p: string): string => readFileSync(path.join(repoRoot, p), "utf8");
const dockerfile = read("docker/Dockerfile");
const compose = read("docker/compose.yaml");

describe("docker/Dockerfile", () => {
  it("pins the Node 24 base image and the repository's pnpm version", () => {
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:24\.\d+\.\d+-bookworm-slim$/m);
    const pkg = JSON.parse(read("package.json")) as { packageManager: string };
    expect(dockerfile).toContain(`npm install -g ${pkg.packageManager}`);
    expect(dockerfile).toContain("pnpm install --frozen-lockfile --offline");
  });

  it("gives pnpm fetch everything it reads: lockfile, workspace file, .npmrc, .pnpmfile.cjs and the patches", () => {
    const beforeFetch = dockerfile.slice(0, dockerfile.indexOf("pnpm fetch"));
    expect(beforeFetch).toContain("COPY pnpm-lock.yaml pnpm-workspace.yaml .npmrc .pnpmfile.cjs ./");
    const patches = [...read("pnpm-workspace.yaml").matchAll(/:\s*(patches\/\S+)/g)].map((m) => m[1]!);
    if (patches.length > 0) expect(beforeFetch).toContain("COPY patches ./patches");
    for (const p of patches) expect(p.startsWith("patches/"), p).toBe(true);
  });

  it("ships one service's production deploy, as the node user, under tini", () => {
    const service = dockerfile.slice(dockerfile.lastIndexOf("FROM runtime-base AS service"));
    expect(service).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/pnpm deploy --filter "@docpipe\/\$\{SERVICE\}" --prod --legacy \/out/);
    expect(dockerfile).toContain('ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/docpipe-entrypoint"]');
    // The task definitions run the same script ECS would otherwise ignore in HEALTHCHECK.
    expect(dockerfile).toContain(`COPY --chmod=755 docker/healthcheck.sh ${HEALTHCHECK_SCRIPT}`);
    expect(dockerfile).toContain(`HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["${HEALTHCHECK_SCRIPT}"]`);
    // the last stage is the default target
    expect(dockerfile.trimEnd().split("\n").filter((l) => l.startsWith("FROM ")).at(-1)).toBe(
      "FROM runtime-base AS service",
    );
  });

  it("has an image for every package the stack deploys, the migrate task's included", () => {
    const dirs = readdirSync(path.join(repoRoot, "services"));
    for (const p of imagePackages) expect(dirs, p).toContain(p);
    expect(imagePackages).toContain("migrate");
  });

  it("keeps node_modules and synth output out of the build context the asset hash covers", () => {
    const ignore = read("docker/Dockerfile.dockerignore").split("\n");
    for (const p of ["**/node_modules", "**/cdk.out", "**/dist", ".git"]) expect(ignore).toContain(p);
  });
});

describe("docker/entrypoint.sh", () => {
  const run = (env: Record<string, string>): string =>
    execFileSync("sh", [path.join(repoRoot, "docker/entrypoint.sh"), "sh", "-c", 'printf %s "$DATABASE_URL|${DB_PASSWORD:-}"'], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
      encoding: "utf8",
    });

  it("builds DATABASE_URL from the ECS secrets, verifying TLS against the RDS CA, and drops the bare password", () => {
    const out = run({ DB_HOST: "db.cluster.local", DB_PORT: "5432", DB_NAME: "docpipe", DB_USERNAME: "docpipe", DB_PASSWORD: "aB3-x_y.z~" });
    expect(out).toBe(
      "postgresql://docpipe:aB3-x_y.z~@db.cluster.local:5432/docpipe?sslmode=verify-full&sslrootcert=/etc/ssl/certs/rds-global-bundle.pem|",
    );
    expect(new URL(out.split("|")[0]!).password).toBe("aB3-x_y.z~");
  });

  it("leaves a given DATABASE_URL alone", () => {
    expect(run({ DATABASE_URL: "postgresql://a:b@h/d", DB_HOST: "ignored" })).toBe("postgresql://a:b@h/d|");
  });

  it("can put any generated password into a URL unescaped", () => {
    // Secrets Manager draws from printable ASCII; whatever the exclusion list leaves must be URL-safe.
    const allowed = Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i)).filter((c) => !URL_UNSAFE.includes(c));
    for (const c of allowed) expect(encodeURIComponent(c), c).toBe(c);
  });
});

describe("docker/compose.yaml and the LocalStack init script", () => {
  it("creates every catalog queue with the catalog's visibility timeout and receive count", () => {
    const script = read("docker/localstack/init-aws.sh");
    const created = [...script.matchAll(/^create_queue (\S+) (\d+) (\d+)$/gm)].map((m) => [m[1], Number(m[2]), Number(m[3])]);
    expect(created).toEqual(Object.values(queues).map((q) => [q.name, q.visibilityTimeoutSeconds, q.maxReceiveCount]));
    expect(script).toContain('--queue-name "$1-dlq"');
    expect(`${queues.ingest.name}-dlq`).toBe(dlqName(queues.ingest));
    expect(script).toMatch(/"Name\\": \\"prefix\\", \\"Value\\": \\"batches\/\\"/);
    expect(script).toMatch(/"Name\\": \\"suffix\\", \\"Value\\": \\".png\\"/);
  });

  it("runs every deployable the stack runs, the splitter in both roles, after the migrations", () => {
    for (const id of serviceIds) expect(compose).toMatch(new RegExp(`^  ${id}:$`, "m"));
    expect(compose).toMatch(/splitter-large:[\s\S]*?ROLE: large/);
    expect(compose).toMatch(/splitter-small:[\s\S]*?ROLE: small/);
    expect(compose).toContain("migrate: { condition: service_completed_successfully }");
    expect(compose).toContain("MODEL_URL: http://model:8080/invocations");
    // ...and the reconciler, which the stack runs as a scheduled task, as a looping service.
    expect(compose).toContain('  reconciler:\n    <<: *service\n    build: { <<: *build, args: { SERVICE: reconciler } }\n    environment: { <<: *env, RECONCILE_INTERVAL_SECONDS: "300" }\n');
  });
});
