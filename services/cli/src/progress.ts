import type { BatchStatus } from "./api.js";
import { printable } from "./printable.js";

const WIDTH = 30;

function bar(done: number, total: number): string {
  const share = total > 0 ? Math.min(1, done / total) : 0;
  const filled = Math.round(share * WIDTH);
  return `[${"#".repeat(filled)}${"-".repeat(WIDTH - filled)}] ${String(done).padStart(7)}/${total}`;
}

/**
 * One line per stage: documents classified, pages split, rendered and scored, against what is
 * known so far (a large document's page count is known once the splitter has opened it).
 */
export function progressLines(s: BatchStatus): string[] {
  const d = s.documents;
  const total = s.documentCount;
  const terminal = (d.done ?? 0) + (d.failed ?? 0);
  const classified = total - (d.queued ?? 0);
  const lines = [
    `batch ${printable(s.batchId)} ${s.label ? `(${printable(s.label)}) ` : ""}${printable(s.state)}${s.state === "listing" ? "…" : ""}` +
      `  ${s.skippedCount ? `${s.skippedCount} non-PDF skipped` : ""}`,
    `  classified  ${bar(classified, total)}`,
  ];
  if (s.pages) {
    const p = s.pages;
    lines.push(
      `  split       ${bar(p.split, p.expected)}`,
      `  rendered    ${bar(p.rendered + p.done, p.expected)}`,
      `  scored      ${bar(p.done, p.expected)}${p.failed ? `  (${p.failed} pages failed)` : ""}`,
    );
  }
  lines.push(`  documents   ${bar(terminal, total)}${d.failed ? `  (${d.failed} failed)` : ""}`);
  if (s.stalled) lines.push(`  STALLED since ${printable(s.stalled.since)} at stage ${printable(s.stalled.stage)}`);
  return lines;
}

/** Redraws the progress block in place on a terminal; prints it now and then otherwise. */
export class ProgressView {
  private drawn = 0;
  private lastPrint = 0;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stdout,
    private readonly everyMs = 5_000,
  ) {}

  update(status: BatchStatus, final = false): void {
    const lines = progressLines(status);
    if (this.out.isTTY) {
      if (this.drawn) this.out.write(`\x1b[${this.drawn}A`);
      for (const l of lines) this.out.write(`\x1b[2K${l}\n`);
      this.drawn = lines.length;
    } else if (final || Date.now() - this.lastPrint >= this.everyMs) {
      this.out.write(`${lines.join("\n")}\n`);
      this.lastPrint = Date.now();
    }
  }
}
