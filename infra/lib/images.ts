import { readFileSync } from "node:fs";
import path from "node:path";
import { aws_ecr_assets as ecrAssets, aws_ecs as ecs, IgnoreMode } from "aws-cdk-lib";
import type { Construct } from "constructs";

/** The monorepo root: the Docker build context of every image. */
export const repoRoot = path.resolve(import.meta.dirname, "../..");

const dockerfile = "docker/Dockerfile";

// The task definitions ask for X86_64; pinning the platform keeps a build on an ARM laptop
// from pushing images Fargate cannot run.
const platform = ecrAssets.Platform.LINUX_AMD64;

/**
 * The same ignore list Docker uses (docker/Dockerfile.dockerignore), so the asset hash CDK
 * computes at synth changes exactly when the build context does, and synth never walks
 * node_modules or its own cdk.out.
 */
const exclude = readFileSync(path.join(repoRoot, "docker/Dockerfile.dockerignore"), "utf8")
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith("#"));

/**
 * The image of one workspace service, built by `cdk deploy` from docker/Dockerfile with
 * `SERVICE=<name>`. Synth only hashes the build context; it needs no Docker engine.
 */
export function serviceImage(service: string): ecs.ContainerImage {
  return ecs.ContainerImage.fromAsset(repoRoot, {
    file: dockerfile,
    buildArgs: { SERVICE: service },
    target: "service",
    platform,
    exclude,
    ignoreMode: IgnoreMode.DOCKER,
    displayName: `docpipe-${service}`,
  });
}

/**
 * The script every service image runs its command through (docker/entrypoint.sh): it builds
 * DATABASE_URL from the task's DB_* variables. A command started beside it with ECS Exec must go
 * through it too.
 */
export const ENTRYPOINT_SCRIPT = "/usr/local/bin/docpipe-entrypoint";

/** The health check script every service image carries (docker/Dockerfile COPYs docker/healthcheck.sh there). */
export const HEALTHCHECK_SCRIPT = "/usr/local/bin/docpipe-healthcheck";

/** The CLI (services/cli), whose image the admin task runs. */
export const ADMIN_PACKAGE = "cli";

/** The reconciler (services/reconciler), run as a scheduled task (lib/reconciler-task.ts). */
export const RECONCILER_PACKAGE = "reconciler";

/** The deployable whose image applies the migrations (services/migrate), run as a one-off task. */
export const MIGRATE_PACKAGE = "migrate";

/**
 * The reference model's endpoint image (docker/Dockerfile target `model`), pushed to the
 * bootstrap ECR repository by `cdk deploy`; SageMaker pulls it by URI.
 */
export function modelImageAsset(scope: Construct, id: string): ecrAssets.DockerImageAsset {
  return new ecrAssets.DockerImageAsset(scope, id, {
    directory: repoRoot,
    file: dockerfile,
    target: "model",
    platform,
    exclude,
    ignoreMode: IgnoreMode.DOCKER,
    displayName: "docpipe-reference-model",
  });
}
