/* global module */
// Optional peer dependencies that pnpm resolves from whatever the workspace has, and that
// `pnpm deploy --prod` then ships in images that never use them:
// - @prisma/client's `prisma` and `typescript`: every service image got a Prisma CLI (even the
//   Prisma 7 one Studio runs), its engines and TypeScript, ~100 MB, for a generated client that
//   needs neither. Only the migrate image has the CLI, as services/migrate's own dependency.
// - prisma's `typescript`: the CLI loads prisma.config.ts without it.
const dropPeers = { "@prisma/client": ["prisma", "typescript"], prisma: ["typescript"] };

function readPackage(pkg) {
  for (const peer of dropPeers[pkg.name] ?? []) {
    delete pkg.peerDependencies?.[peer];
    delete pkg.peerDependenciesMeta?.[peer];
  }
  return pkg;
}

module.exports = { hooks: { readPackage } };
