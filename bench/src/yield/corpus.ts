// The real-world corpus: its manifest (where each file comes from), its oracle (what mutool and
// pdftoppm make of each) and the git-ignored folder the files are gathered into.
import { readFile } from "node:fs/promises";
import type { ReferenceResult, ReferenceTool } from "./reference.ts";

const ROOT = new URL("../../../tests/corpus/real-world/", import.meta.url).pathname;
export const MANIFEST_PATH = `${ROOT}manifest.tsv`;
export const ORACLE_PATH = `${ROOT}oracle.json`;
/** Where `yield:gather` puts the files: `<owner>/<name>/<path in that repository>`. */
export const CORPUS_FILES = `${ROOT}files`;

export interface ManifestEntry {
  /** GitHub owner/name. */
  repository: string;
  commit: string;
  /** Path in that repository at that commit. */
  path: string;
  sha256: string;
  bytes: number;
}

export const MANIFEST_HEADER = ["repository", "commit", "path", "sha256", "bytes"] as const;

/** The file's place in the corpus folder. */
export function corpusName(e: Pick<ManifestEntry, "repository" | "path">): string {
  return `${e.repository}/${e.path}`;
}

export async function readManifest(path = MANIFEST_PATH): Promise<ManifestEntry[]> {
  const [header, ...lines] = (await readFile(path, "utf8")).split("\n").filter((l) => l && !l.startsWith("#"));
  if (header !== MANIFEST_HEADER.join("\t")) throw new Error(`${path}: the header must be ${MANIFEST_HEADER.join(" ")}`);
  return lines.map((line, i) => {
    const [repository, commit, p, sha256, bytes] = line.split("\t");
    if (!repository || !commit || !p || !sha256 || !bytes) throw new Error(`${path}:${i + 2}: expected 5 tab-separated fields`);
    return { repository, commit, path: p, sha256, bytes: Number(bytes) };
  });
}

export type OracleEntry = Record<ReferenceTool, ReferenceResult>;

export interface Oracle {
  dpi: number;
  tools: Record<ReferenceTool, string>;
  /** By corpus name (see corpusName). */
  files: Record<string, OracleEntry>;
}

export async function readOracle(path = ORACLE_PATH): Promise<Oracle> {
  return JSON.parse(await readFile(path, "utf8")) as Oracle;
}
