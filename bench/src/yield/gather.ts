// Puts the real-world corpus's files in place (tests/corpus/real-world/files, git-ignored),
// checking each file's sha256: from a local git mirror of the repository the manifest names when
// there is one, otherwise downloaded from GitHub (raw.githubusercontent.com/<repo>/<commit>/<path>).
//   pnpm --filter @docpipe/bench yield:gather [--mirror DIR]
// DIR holds one bare repository per source as <owner>+<name>/repo (the layout of the search
// tool's snapshots); the default is $DOCPIPE_CORPUS_MIRROR or /work/.mirror.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { access, mkdir, readFile, writeFile } from "node:fs/promises";
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

/** The file's bytes from the local mirror of its repository, or undefined when there is no mirror. */
async function fromMirror(e: ManifestEntry, mirror: string): Promise<Buffer | string | undefined> {
  const gitDir = join(mirror, e.repository.replace("/", "+"), "repo");
  if (!(await access(gitDir).then(() => true, () => false))) return undefined;
  try {
    const { stdout } = await run("git", ["--git-dir", gitDir, "cat-file", "blob", `${e.commit}:${e.path}`], { encoding: "buffer", maxBuffer: 256 << 20 });
    return stdout;
  } catch {
    return `not in ${gitDir} at ${e.commit.slice(0, 12)}`;
  }
}

async function download(e: ManifestEntry): Promise<Buffer | string> {
  const url = `https://raw.githubusercontent.com/${e.repository}/${e.commit}/${e.path.split("/").map(encodeURIComponent).join("/")}`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(60_000) });
    if (!res.ok) return `${url}: HTTP ${res.status}`;
    return Buffer.from(await res.arrayBuffer());
  } catch (err) {
    return `${url}: ${err instanceof Error ? err.message : String(err)}`;
  }
}

async function gather(e: ManifestEntry, mirror: string): Promise<"present" | "copied" | "downloaded" | string> {
  const out = join(CORPUS_FILES, corpusName(e));
  if (await present(out, e.sha256)) return "present";
  const mirrored = await fromMirror(e, mirror);
  const bytes = mirrored ?? (await download(e));
  if (typeof bytes === "string") return bytes;
  const sha = createHash("sha256").update(bytes).digest("hex");
  if (sha !== e.sha256) return `sha256 is ${sha}, the manifest says ${e.sha256}`;
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, bytes);
  return mirrored ? "copied" : "downloaded";
}

const { values } = parseArgs({ options: { mirror: { type: "string" } } });
const mirror = values.mirror ?? process.env.DOCPIPE_CORPUS_MIRROR ?? "/work/.mirror";
const manifest = await readManifest();
const tally = { present: 0, copied: 0, downloaded: 0, missing: 0 };
let next = 0;
// A few at a time: downloads wait on the network, copies on git.
await Promise.all(
  Array.from({ length: 4 }, async () => {
    while (next < manifest.length) {
      const e = manifest[next++]!;
      const r = await gather(e, mirror);
      if (r === "present" || r === "copied" || r === "downloaded") tally[r]++;
      else {
        tally.missing++;
        console.error(`${corpusName(e)}: ${r}`);
      }
    }
  }),
);
console.log(
  `${manifest.length} files: ${tally.present} already there, ${tally.copied} copied from ${mirror}, ${tally.downloaded} downloaded, ` +
    `${tally.missing} missing → ${CORPUS_FILES}`,
);
if (tally.missing > 0) process.exitCode = 1;
