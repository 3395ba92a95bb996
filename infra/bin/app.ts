import { parseArgs } from "node:util";
import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { ConfigError, configFromContext, type DocpipeConfig } from "../lib/config.js";
import { DocpipeStack } from "../lib/docpipe-stack.js";
import { projectContext } from "../lib/project-context.js";

// `pnpm synth -c key=value` runs this file without the CDK CLI, so read `-c` here too; under
// the CLI, context arrives through CDK_CONTEXT_JSON and argv is empty.
const { values } = parseArgs({ options: { context: { type: "string", short: "c", multiple: true } }, strict: false });
const argvContext = Object.fromEntries(
  (values.context as string[] | undefined)?.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]) ?? [],
);

// Under the CLI the output directory comes from CDK_OUTDIR; `pnpm synth` writes cdk.out. The
// feature flags of cdk.json apply either way.
const app = new App({ outdir: process.env.CDK_OUTDIR ?? "cdk.out", context: { ...projectContext(), ...argvContext } });
/** A wrong or missing context value is the person's to fix: say which, without a stack trace. */
function configError(e: unknown): never {
  if (!(e instanceof ConfigError)) throw e;
  console.error(`docpipe: ${e.message}`);
  process.exit(1);
}
let config: DocpipeConfig;
try {
  config = configFromContext((key) => app.node.tryGetContext(key));
} catch (e) {
  configError(e);
}
// The load balancer's access logging needs a concrete region. The CLI passes the one of your
// AWS profile; an offline `pnpm synth` takes `-c region=...` or AWS_REGION.
const region = app.node.tryGetContext("region") ?? process.env.CDK_DEFAULT_REGION ?? process.env.AWS_REGION;
if (!region) configError(new ConfigError("no AWS region: set AWS_REGION, an AWS profile with a region, or -c region=eu-west-1"));
new DocpipeStack(app, app.node.tryGetContext("stackName") ?? "Docpipe", {
  config,
  env: { account: app.node.tryGetContext("account") ?? process.env.CDK_DEFAULT_ACCOUNT, region },
  description: "docpipe: PDFs to page PNGs to model results, on ECS Fargate with SQS, S3 and Aurora",
});
// Synthesis fails on any AwsSolutions finding that is not acknowledged with a reason.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
