// Reads docker/Dockerfile so the bundle test runs the commands the image build runs, not a
// copy of them that could drift. Only what that Dockerfile uses is understood: stages, RUN
// (with BuildKit --mount flags), ENV, WORKDIR, COPY, CMD and ENTRYPOINT in exec form.

export interface Instruction {
  /** Upper-case keyword: RUN, ENV, COPY... */
  op: string;
  /** Everything after the keyword, continuation lines joined, comments dropped. */
  args: string;
}

export interface Stage {
  name: string;
  /** The image or earlier stage it starts from. */
  from: string;
  instructions: Instruction[];
}

export class DockerfileError extends Error {
  override readonly name = "DockerfileError";
}

/** Stages in file order. */
export function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (pending === "" && (line.trimStart().startsWith("#") || line.trim() === "")) continue;
    if (pending !== "" && line.trimStart().startsWith("#")) continue; // comment inside a continued RUN
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    logical.push((pending + line.trim()).trim());
    pending = "";
  }
  const stages: Stage[] = [];
  for (const l of logical) {
    const m = /^(\w+)\s+(.*)$/s.exec(l);
    if (!m) throw new DockerfileError(`cannot read the Dockerfile line "${l}"`);
    const op = m[1]!.toUpperCase();
    const args = m[2]!;
    if (op === "FROM") {
      const from = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!from) throw new DockerfileError(`cannot read FROM ${args}`);
      stages.push({ name: from[2] ?? `stage-${stages.length}`, from: from[1]!, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push({ op, args });
    }
  }
  return stages;
}

export function stage(stages: Stage[], name: string): Stage {
  const s = stages.find((x) => x.name === name);
  if (!s) throw new DockerfileError(`docker/Dockerfile has no stage "${name}"`);
  return s;
}

/** The stage and the stages it is built on, base first. */
export function lineage(stages: Stage[], name: string): Stage[] {
  const chain: Stage[] = [];
  for (let s: Stage | undefined = stage(stages, name); s; s = stages.find((x) => x.name === s!.from)) chain.unshift(s);
  return chain;
}

/** RUN commands of a stage as the shell sees them (BuildKit flags removed). */
export function runs(s: Stage): string[] {
  return s.instructions.filter((i) => i.op === "RUN").map((i) => i.args.replace(/^(--\S+\s+)+/, ""));
}

/** ENV of a stage and its bases, `${VAR}` taken from `vars`. */
export function env(stages: Stage[], name: string, vars: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of lineage(stages, name)) {
    for (const i of s.instructions.filter((x) => x.op === "ENV")) {
      for (const [, k, v] of i.args.matchAll(/(\w+)=(\S+)/g)) {
        out[k!] = v!.replace(/\$\{(\w+)\}/g, (_, n: string) => vars[n] ?? out[n] ?? "");
      }
    }
  }
  return out;
}

/** The last value of an exec-form instruction (CMD, ENTRYPOINT) along the stage's lineage. */
export function execForm(stages: Stage[], name: string, op: "CMD" | "ENTRYPOINT"): string[] {
  const found = lineage(stages, name)
    .flatMap((s) => s.instructions)
    .filter((i) => i.op === op)
    .at(-1);
  if (!found) throw new DockerfileError(`stage "${name}" has no ${op}`);
  const parsed: unknown = JSON.parse(found.args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === "string")) {
    throw new DockerfileError(`${op} of stage "${name}" is not in exec form: ${found.args}`);
  }
  return parsed;
}

export function workdir(stages: Stage[], name: string): string {
  const found = lineage(stages, name)
    .flatMap((s) => s.instructions)
    .filter((i) => i.op === "WORKDIR")
    .at(-1);
  if (!found) throw new DockerfileError(`stage "${name}" has no WORKDIR`);
  return found.args;
}

/** Files COPY'd from the build context into the image, by their path in the image. */
export function contextCopies(stages: Stage[], name: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of lineage(stages, name)) {
    for (const i of s.instructions.filter((x) => x.op === "COPY" && !x.args.includes("--from="))) {
      const parts = i.args.split(/\s+/).filter((p) => !p.startsWith("--"));
      if (parts.length === 2) out.set(parts[1]!, parts[0]!);
    }
  }
  return out;
}
