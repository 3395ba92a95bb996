// `pnpm images:size`: what docker/Dockerfile's stages add to each image, measured without Docker.
//
// - The bundle (/app): built by build.ts exactly as the image build does (the Dockerfile's own
//   commands), then every regular file's size summed once per inode, the way a layer's tar
//   counts it. The five largest packages of each bundle are listed.
// - Debian packages: the `apt-get install` lines of the stages each image is built from,
//   closed over their dependencies (apt-cache, bookworm) minus what the slim base already has
//   (Priority: required, plus apt), summed by Installed-Size.
// - The base image (node:24…-bookworm-slim) is the same under every image and not measured.
//
// REUSE_IMAGE_BUNDLES=<dir> measures bundles kept by an earlier build (KEEP_IMAGE_BUNDLES=1).
import { execFileSync } from "node:child_process";
import { lstat, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { imagePackages } from "@docpipe/infra/services";
import { buildBundles, REPO_ROOT } from "./build.js";
import { parseDockerfile, runs, stage, type Stage } from "./dockerfile.js";

const MB = 1e6;
const print = (line = ""): void => void process.stdout.write(`${line}\n`);

interface Walked {
  bytes: number;
  files: number;
  /** Bytes per package directory under node_modules/.pnpm (name@version). */
  byPackage: Map<string, number>;
}

async function walk(root: string): Promise<Walked> {
  const seen = new Set<number>();
  const out: Walked = { bytes: 0, files: 0, byPackage: new Map() };
  const visit = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        await visit(p);
        continue;
      }
      const st = await lstat(p);
      if (st.isFile() && seen.has(st.ino)) continue;
      seen.add(st.ino);
      out.bytes += st.size;
      out.files++;
      const pkg = /node_modules\/\.pnpm\/([^/]+)\//.exec(path.relative(root, p))?.[1];
      if (pkg) out.byPackage.set(pkg, (out.byPackage.get(pkg) ?? 0) + st.size);
    }
  };
  await visit(root);
  return out;
}

/** Packages `apt-get install` names in a stage's RUNs, with the services a `case "$SERVICE"` limits them to. */
function aptInstalls(s: Stage): { packages: string[]; only?: string[] }[] {
  const found: { packages: string[]; only?: string[] }[] = [];
  for (const command of runs(s)) {
    const only = /case "\$SERVICE" in\s+([\w|-]+)\)/.exec(command)?.[1]?.split("|");
    for (const m of command.matchAll(/apt-get install ((?:-\S+\s+)*)([a-z0-9][a-z0-9.+-]*(?:\s+[a-z0-9][a-z0-9.+-]*)*)/g)) {
      found.push({ packages: m[2]!.trim().split(/\s+/), ...(only && { only }) });
    }
  }
  return found;
}

const apt = (args: string[]): string => execFileSync("apt-cache", args, { encoding: "utf8", maxBuffer: 1 << 30 });

/** Installed-Size (bytes) and priority of every package apt knows. */
function aptIndex(): Map<string, { size: number; priority: string }> {
  const index = new Map<string, { size: number; priority: string }>();
  for (const para of apt(["dumpavail"]).split("\n\n")) {
    const name = /^Package: (\S+)$/m.exec(para)?.[1];
    if (!name || index.has(name)) continue;
    index.set(name, {
      size: Number(/^Installed-Size: (\d+)$/m.exec(para)?.[1] ?? 0) * 1024,
      priority: /^Priority: (\S+)$/m.exec(para)?.[1] ?? "",
    });
  }
  return index;
}

/** The packages and everything they depend on (no recommends), real packages only. */
function closure(packages: string[], index: Map<string, unknown>): Set<string> {
  if (packages.length === 0) return new Set();
  const out = apt([
    "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
    ...packages,
  ]);
  return new Set(out.split("\n").filter((l) => /^\S/.test(l) && index.has(l.trim())).map((l) => l.trim()));
}

async function main(): Promise<void> {
  const stages = parseDockerfile(await readFile(path.join(REPO_ROOT, "docker/Dockerfile"), "utf8"));
  const reuse = process.env.REUSE_IMAGE_BUNDLES;
  const bundles = await buildBundles(imagePackages, reuse ? { reuse } : {});
  try {
    const index = aptIndex();
    const base = closure([...[...index].filter(([, v]) => v.priority === "required").map(([k]) => k), "apt"], index);
    const installs = [...aptInstalls(stage(stages, "runtime-base")), ...aptInstalls(stage(stages, "service"))];
    const aptBytes = (image: string): { bytes: number; names: string[] } => {
      const names = installs.filter((i) => !i.only || i.only.includes(image)).flatMap((i) => i.packages);
      const added = [...closure(names, index)].filter((p) => !base.has(p));
      return { bytes: added.reduce((n, p) => n + (index.get(p)?.size ?? 0), 0), names };
    };

    const images = [...[...bundles.services].map(([s, r]) => [s, r.appDir] as const), ["model (target model)", bundles.model.appDir] as const];
    const rows: string[] = [];
    let total = 0;
    for (const [image, dir] of images) {
      const w = await walk(dir);
      const debs = aptBytes(image);
      total += w.bytes + debs.bytes;
      const top = [...w.byPackage]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 5)
        .map(([p, b]) => `${p.replace(/_.*$/, "")} ${(b / MB).toFixed(1)}`)
        .join(", ");
      rows.push(
        `| ${image} | ${(w.bytes / MB).toFixed(1)} | ${w.files} | ${(debs.bytes / MB).toFixed(1)} (${debs.names.join(" ")}) | ${((w.bytes + debs.bytes) / MB).toFixed(1)} | ${top} |`,
      );
    }
    print(`image sizes on top of ${/^ARG NODE_IMAGE=(\S+)$/m.exec(await readFile(path.join(REPO_ROOT, "docker/Dockerfile"), "utf8"))?.[1]} (MB = 10^6 bytes)\n`);
    print("| image | /app bundle MB | files | Debian packages MB | added MB | largest packages in the bundle (MB) |");
    print("|---|---|---|---|---|---|");
    for (const r of rows) print(r);
    print(`\nall ${images.length} images together: ${(total / MB).toFixed(1)} MB added`);
  } finally {
    if (!reuse && !process.env.KEEP_IMAGE_BUNDLES) await bundles.remove();
    else console.error(`bundles kept in ${bundles.root}`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
