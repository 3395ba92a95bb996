import type { PrismaClient } from "./generated/client.js";

/** A page worked by a stage more often than the audit trail's retries explain. */
export interface UnexplainedWork {
  stage: string;
  documentId: string;
  pageNumber: number;
  /** `started` records: each is one render (convert) or one model call (inference) at most. */
  started: number;
  /** Retries the trail shows: redeliveries (`attempt` > 1) and re-sent messages (`reconciled`, `replayed`). */
  retries: number;
}

/**
 * The render and model-call attempts of a batch, from its audit trail, and the pages worked more
 * often than their retries explain. Each attempt of `convert` and `inference` records `started`
 * before its work, so the work done is at most the attempts recorded; a page attempted more than
 * once must owe each extra attempt to a retry the trail shows. A duplicate delivery that did the
 * work again shows up in `unexplained`.
 */
export async function workAttempts(prisma: PrismaClient, batchId: string): Promise<{ convert: number; inference: number; unexplained: UnexplainedWork[] }> {
  const events = await prisma.auditEvent.findMany({
    where: { batchId, stage: { in: ["convert", "inference"] }, outcome: { in: ["started", "reconciled", "replayed"] } },
    select: { stage: true, documentId: true, pageNumber: true, outcome: true, attempt: true },
  });
  const units = new Map<string, UnexplainedWork>();
  const attempts = { convert: 0, inference: 0 };
  for (const e of events) {
    const key = `${e.stage} ${e.documentId}#${e.pageNumber}`;
    const u = units.get(key) ?? { stage: e.stage, documentId: e.documentId ?? "", pageNumber: e.pageNumber ?? 0, started: 0, retries: 0 };
    if (e.outcome === "started") {
      u.started++;
      attempts[e.stage as keyof typeof attempts]++;
    }
    if (e.outcome !== "started" || e.attempt > 1) u.retries++;
    units.set(key, u);
  }
  return { ...attempts, unexplained: [...units.values()].filter((u) => u.started > 1 + u.retries) };
}
