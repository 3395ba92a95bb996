import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { App, Validations } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { configFromContext, type DocpipeConfig } from "../lib/config.js";
import { DocpipeStack } from "../lib/docpipe-stack.js";
import { projectContext } from "../lib/project-context.js";

export const env = { account: "123456789012", region: "eu-west-1" } as const;

export interface Synthesized {
  readonly app: App;
  readonly stack: DocpipeStack;
  readonly config: DocpipeConfig;
  /** Undefined when synthesis (including the cdk-nag validation) threw. */
  readonly template?: Template;
  /** What synthesis threw: a cdk-nag or CloudFormation validation failure, for example. */
  readonly error?: unknown;
  /** The policy validation report CDK writes into the cloud assembly. */
  readonly report: { pluginReports: { pluginName: string; violations: { ruleName: string }[] }[] };
  cleanup(): void;
}

/**
 * Builds and synthesizes the stack once, with cdk-nag's AwsSolutions pack registered the
 * way bin/app.ts registers it. Offline: image assets are only hashed, never built.
 */
export function synth(context: Record<string, string>): Synthesized {
  const outdir = mkdtempSync(path.join(tmpdir(), "docpipe-cdk-"));
  // cdk.json's feature flags, as `cdk synth` applies them. Hash image assets but do not copy the
  // build context into the assembly: tests never deploy it.
  const app = new App({ outdir, context: { ...projectContext(), "aws:cdk:disable-asset-staging": true } });
  const config = configFromContext((k) => context[k]);
  const stack = new DocpipeStack(app, "Docpipe", { config, env });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  let template: Template | undefined;
  let error: unknown;
  try {
    const assembly = app.synth();
    template = Template.fromJSON(assembly.getStackArtifact(stack.artifactId).template);
  } catch (e) {
    error = e;
  }
  let report: Synthesized["report"] = { pluginReports: [] };
  try {
    report = JSON.parse(readFileSync(path.join(outdir, "validation-report.json"), "utf8"));
  } catch {
    // No report when synthesis failed before validation.
  }
  return {
    app,
    stack,
    config,
    template,
    error,
    report,
    cleanup: () => rmSync(outdir, { recursive: true, force: true }),
  };
}

type Resource = { Type: string; Properties: Record<string, unknown>; DependsOn?: string[] };

/** The resources of a type, keyed by logical id. */
export function resources(template: Template, type: string): Record<string, Resource> {
  return template.findResources(type) as Record<string, Resource>;
}

/** The logical id of the single resource of `type` whose properties match `pred`. */
export function logicalIdWhere(template: Template, type: string, pred: (p: Record<string, unknown>) => boolean): string {
  const ids = Object.entries(resources(template, type))
    .filter(([, r]) => pred(r.Properties ?? {}))
    .map(([id]) => id);
  if (ids.length !== 1) throw new Error(`expected one ${type} matching, found ${ids.length}`);
  return ids[0]!;
}
