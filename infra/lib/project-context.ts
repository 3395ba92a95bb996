import { readFileSync } from "node:fs";
import path from "node:path";

/**
 * The `context` block of infra/cdk.json: the CDK feature flags this app is written for. The CDK
 * CLI passes it on by itself; `pnpm synth` and the tests build the App without the CLI, so they
 * read it here and synthesize the same template.
 */
export function projectContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(path.resolve(import.meta.dirname, "../cdk.json"), "utf8")) as { context?: Record<string, unknown> };
  return cdkJson.context ?? {};
}
