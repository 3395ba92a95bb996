// Puts the real-world corpus's files in place (tests/corpus/real-world/files, git-ignored) from
// local git mirrors of the repositories its manifest names, checking each file's sha256.
//   pnpm --filter @docpipe/bench yield:gather [--mirror DIR]
// DIR holds one bare repository per source as <owner>+<name>/repo (the layout of the search
// tool's snapshots); the default is $DOCPIPE_CORPUS_MIRROR or /work/.mirror.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { promisify } from "node:util";
import { CORPUS_FILES, corpusName, readManifest, type ManifestEntry } from "./corpus.ts";

const run = promisify(execFile);

async function present(path: string, sha256: string): Promise<boolean> {
  try {
    return createHash("sha256").update(await readFile(path)).digest("hex") === sha256;
  } catch {
    return false;
  }
}

async function gather(e: ManifestEntry, mirror: string): Promise<"present" | "copied" | string> {
  const out = join(CORPUS_FILES, corpusName(e));
  if (await present(out, e.sha256)) return "present";
  const gitDir = join(mirror, e.repository.replace("/", "+"), "repo");
  let bytes: Buffer;
  try {
    ({ stdout: bytes } = await run("git", ["--git-dir", gitDir, "cat-file", "blob", `${e.commit}:${e.path}`], {
      encoding: "buffer",
      maxBuffer: 256 << 20,
    }));
  } catch {
    return `not in ${gitDir} at ${e.commit.slice(0, 12)}`;
  }
  const sha = createHash("sha256").update(bytes).digest("hex");
  if (sha !== e.sha256) return `sha256 is ${sha}, the manifest says ${e.sha256}`;
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, bytes);
  return "copied";
}

const { values } = parseArgs({ options: { mirror: { type: "string" } } });
const mirror = values.mirror ?? process.env.DOCPIPE_CORPUS_MIRROR ?? "/work/.mirror";
const manifest = await readManifest();
const tally = { present: 0, copied: 0, missing: 0 };
for (const e of manifest) {
  const r = await gather(e, mirror);
  if (r === "present" || r === "copied") tally[r]++;
  else {
    tally.missing++;
    console.error(`${corpusName(e)}: ${r}`);
  }
}
console.log(`${manifest.length} files: ${tally.present} already there, ${tally.copied} copied, ${tally.missing} missing → ${CORPUS_FILES}`);
if (tally.missing > 0) process.exitCode = 1;
