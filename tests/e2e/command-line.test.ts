// The docpipe command line as a person meets it: help, usage errors and their exit status, the
// warning for a folder with nothing to run, and a terminal that stays theirs during `run`
// (progress and report on stdout, the JSON logs in a file whose path it prints).
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { execute } from "@docpipe/cli";
import { LOCAL_DIR, REPO_ROOT } from "@docpipe/local-stack";
import { generatePdf, PAGE_SIZES } from "@docpipe/pdf";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { docpipeNodeArgs } from "../fixtures/docpipe-command.js";

const STACK = `e2e-command-line-${process.pid}`;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docpipe-command-line-"));
});

afterAll(async () => {
  await rm(join(LOCAL_DIR, STACK), { recursive: true, force: true });
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs a command line in this process, with its stdout and stderr captured. */
async function docpipe(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const capture = () => {
    const chunks: Buffer[] = [];
    const stream = new PassThrough();
    stream.on("data", (c: Buffer) => chunks.push(c));
    return { stream: Object.assign(stream, { isTTY: false }) as unknown as NodeJS.WriteStream, text: () => Buffer.concat(chunks).toString("utf8") };
  };
  const out = capture();
  const err = capture();
  const code = await execute(argv, { stdout: out.stream, stderr: err.stream, cwd: dir, env: { ...process.env, DATABASE_URL: undefined } });
  return { code, stdout: out.text(), stderr: err.text() };
}

/** The real command, as `pnpm docpipe` starts it, in a child process. */
function spawnDocpipe(args: string[], timeout = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const { INIT_CWD: _, ...env } = process.env;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...docpipeNodeArgs(), ...args],
      { cwd: REPO_ROOT, timeout, env: { ...env, LOG_LEVEL: "info" }, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("docpipe's help and usage errors", () => {
  test("docpipe --help lists every command and the exit codes", async () => {
    const { code, stdout } = await docpipe("--help");
    expect(code).toBe(0);
    for (const command of ["run", "submit", "status", "report", "retry-failed", "studio", "keys", "plans", "usage", "redrive"]) {
      expect(stdout).toMatch(new RegExp(`^  ${command} `, "m"));
    }
    expect(stdout).toContain("2 usage error");
    expect(stdout).toContain("3 run --strict");
  });

  test("each command's --help shows its own options only", async () => {
    const run = await docpipe("run", "--help");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("Usage: docpipe run [options] <folder>");
    for (const option of ["--report-json", "--dpi", "--strict", "--stack", "--verbose"]) expect(run.stdout).toContain(option);
    const report = await docpipe("report", "--help");
    expect(report.stdout).toContain("--json");
    expect(report.stdout).not.toContain("--dpi");
    expect((await docpipe("keys", "create", "--help")).stdout).toContain("--owner <owner>");
  });

  test("an option another command has, an unknown command or a missing argument is a usage error: exit 2", async () => {
    const wrong = await spawnDocpipe(["report", "6f1c1a52-3f0e-4a8e-9a43-0b7b1d1f2c3a", "--dpi", "3"]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain("unknown option '--dpi'");
    expect(wrong.stdout).toBe("");
    const unknown = await docpipe("frobnicate");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
    expect((await docpipe("status")).code).toBe(2);
    const badDpi = await docpipe("run", ".", "--dpi", "many");
    expect(badDpi.code).toBe(2);
    expect(badDpi.stderr).toContain("--dpi must be a positive number");
    expect((await docpipe()).code).toBe(2);
  });

  test("resume of a stack that was never made is a usage error that leaves nothing behind", async () => {
    const missing = `${STACK}-never-made`;
    const { code, stdout, stderr } = await docpipe("resume", "--stack", missing);
    expect(code).toBe(2);
    expect(stderr).toContain(`there is no local stack "${missing}"`);
    expect(stdout).toBe("");
    expect(existsSync(join(LOCAL_DIR, missing))).toBe(false);
  });
});

describe("docpipe run", () => {
  test("a folder with no PDF gets a warning and starts nothing", async () => {
    const empty = join(dir, "no-pdfs");
    await mkdir(empty);
    await writeFile(join(empty, "notes.txt"), "shopping list\n");
    const { code, stdout, stderr } = await docpipe("run", "no-pdfs", "--stack", STACK);
    expect(code).toBe(0);
    expect(stderr).toBe("warning: no PDF under no-pdfs (1 other file): nothing to run\n");
    expect(stdout).toBe("");
    expect(existsSync(join(LOCAL_DIR, STACK))).toBe(false);
  });

  test("writes its JSON logs to a file under the stack's folder; piped stdout holds only progress and the report", { timeout: 120_000 }, async () => {
    const folder = join(dir, "two");
    await mkdir(folder);
    const letter = { widthPt: PAGE_SIZES.letter[0], heightPt: PAGE_SIZES.letter[1] };
    await generatePdf(join(folder, "one.pdf"), [{ ...letter, content: "text" }]);
    await generatePdf(join(folder, "two.pdf"), [{ ...letter, content: "mixed" }, { ...letter, content: "blank" }]);

    const { code, stdout, stderr } = await spawnDocpipe(["run", folder, "--stack", STACK, "--dpi", "40"], 110_000);
    expect(code).toBe(0);
    expect(stderr).toBe("");
    const lines = stdout.split("\n").filter(Boolean);
    expect(lines.filter((l) => l.trimStart().startsWith("{"))).toEqual([]);
    expect(stdout).toMatch(/Batch [0-9a-f-]{36} \(two\): completed/);

    const logPath = /^logs: (\S+) /m.exec(stdout)?.[1];
    expect(logPath).toBeDefined();
    const file = join(REPO_ROOT, logPath!);
    expect(file.startsWith(join(LOCAL_DIR, STACK, "logs"))).toBe(true);
    const logLines = (await readFile(file, "utf8")).split("\n").filter(Boolean);
    expect(logLines.length).toBeGreaterThan(0);
    const services = new Set<string>();
    for (const line of logLines) {
      const record = JSON.parse(line) as { service?: string };
      services.add(record.service!);
      // No key twice in one line (JSON.parse would keep only the last).
      for (const key of ["service", "component", "worker", "documentId"]) expect(line.split(`"${key}":`).length).toBeLessThanOrEqual(2);
    }
    expect([...services]).toEqual(expect.arrayContaining(["ingestion", "reference-model"]));
  });
});
