import { printable } from "./printable.js";

/**
 * The one table printer of the CLI: a header, a dashed rule, then the rows, columns two spaces
 * apart. The first column is left-aligned and the others right-aligned (counts), unless `left`
 * names more text columns. Every cell is {@link printable}.
 */
export function formatTable(head: string[], rows: (string | number | null | undefined)[][], opts: { left?: number[] } = {}): string {
  const left = new Set([0, ...(opts.left ?? [])]);
  // Cells hold names, labels and reasons from users and files: printed escaped, never acted on by the terminal.
  const cells = [head, ...rows.map((r) => head.map((_, i) => printable(r[i])))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (left.has(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...cells.slice(1).map(line)].join("\n");
}
