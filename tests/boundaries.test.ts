// The boundary rule of eslint.config.js (README "Repository layout"), on imports a change could
// add: libraries never import services, only the single-box deployment imports other services,
// and no workspace reaches into another by relative path.
import { REPO_ROOT } from "@docpipe/local-stack";
import { ESLint } from "eslint";
import path from "node:path";
import { describe, expect, test } from "vitest";

const eslint = new ESLint({ cwd: REPO_ROOT });

/** The boundary rules' messages for `code` as if it were the file at `file` (relative to the repository). */
async function boundaryErrors(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(REPO_ROOT, file) });
  return result!.messages
    .filter((m) => m.ruleId === "no-restricted-imports" || m.ruleId === "no-restricted-syntax")
    .map((m) => m.message);
}

describe("the boundary lint rule", () => {
  test("a library may not import a service, statically or dynamically", async () => {
    const errors = await boundaryErrors(
      "packages/queue/src/example.ts",
      'import { buildApp } from "@docpipe/ingestion";\nexport const a = [buildApp, import("@docpipe/cli")];\n',
    );
    expect(errors).toHaveLength(2);
    expect(errors[0]).toContain("never imports a deployable");
  });

  test("a service may not import another service; the single-box deployment may", async () => {
    const code = 'import { createSplitter } from "@docpipe/splitter";\nexport const a = createSplitter;\n';
    expect(await boundaryErrors("services/failsafe/src/example.ts", code)).toEqual([
      expect.stringContaining("only the single-box deployment (services/cli) imports services"),
    ]);
    expect(await boundaryErrors("services/cli/src/example.ts", code)).toEqual([]);
  });

  test("tests import a workspace by its package name, not by a relative path into it", async () => {
    const errors = await boundaryErrors(
      "tests/e2e/example.test.ts",
      'import { createLogger } from "../../packages/queue/src/index.js";\nexport const a = createLogger;\n',
    );
    expect(errors).toEqual([expect.stringContaining("by its package name")]);
    expect(await boundaryErrors("tests/e2e/example.test.ts", 'import { createLogger } from "@docpipe/queue";\nexport const a = createLogger;\n')).toEqual([]);
  });
});
