import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import js from "@eslint/js";
import tseslint from "typescript-eslint";

// ---- Boundaries (README "Repository layout") ----
// Libraries (packages/) never import deployables (services/). Among deployables only the
// single-box one (services/cli, which runs every service in one process) imports the others;
// the rest meet only through queues, S3 and the database. And nothing reaches into another
// workspace by relative path: a workspace is imported by its package name.
const SINGLE_BOX = "services/cli";
const servicesDir = path.join(import.meta.dirname, "services");
const servicePackages = readdirSync(servicesDir, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => JSON.parse(readFileSync(path.join(servicesDir, d.name, "package.json"), "utf8")).name);
const serviceRegex = `^(${servicePackages.join("|")})(/|$)`;
const intoAnotherWorkspace = {
  regex: "^(\\.\\./){2,}(packages|services|infra|tests|bench)/",
  message: "Import another workspace by its package name (@docpipe/...), not by a relative path into it.",
};
const importsOfServices = (message) => ({
  "no-restricted-imports": ["error", { patterns: [intoAnotherWorkspace, { regex: serviceRegex, message }] }],
  // no-restricted-imports does not see import(): the same rule for dynamic imports.
  "no-restricted-syntax": [
    "error",
    { selector: `ImportExpression > Literal.source[value=/${serviceRegex.replace(/\//g, "\\/")}/]`, message },
  ],
});

export default tseslint.config(
  {
    ignores: ["**/dist/**", "**/node_modules/**", "**/generated/**", "**/cdk.out/**", ".local/**", "**/*.d.ts"],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-console": ["error", { allow: ["error"] }],
    },
  },
  {
    // Command-line tools and benchmarks talk to a person on the terminal.
    files: [`${SINGLE_BOX}/**`, "bench/**"],
    rules: { "no-console": "off" },
  },
  {
    files: ["services/**", "tests/**", "infra/**"],
    rules: { "no-restricted-imports": ["error", { patterns: [intoAnotherWorkspace] }] },
  },
  {
    files: ["packages/**"],
    rules: importsOfServices("A library (packages/) never imports a deployable (services/): move what both need into a package."),
  },
  {
    files: ["services/**"],
    ignores: [`${SINGLE_BOX}/**`],
    rules: importsOfServices(
      `Services meet through queues, S3 and the database; only the single-box deployment (${SINGLE_BOX}) imports services. Move what both need into a package.`,
    ),
  },
);
