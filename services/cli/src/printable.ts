/**
 * What a terminal would act on rather than show: C0 and C1 controls (ESC starts the sequences
 * that clear a screen, move the cursor or set a window title; U+009B is an 8-bit CSI), DEL, the
 * line and paragraph separators, and the bidirectional controls that reorder what follows them
 * (U+202E makes `fdp.exe` read `exe.pdf`). A lone surrogate has no UTF-8 form to show.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

const escape = (c: string): string => {
  const code = c.charCodeAt(0);
  return NAMED[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`);
};

/**
 * Text that came from a user or a file (labels, keys, names, reasons, file and folder names,
 * messages that quote them) as the CLI prints it in a table or a line: every character a
 * terminal would act on is written as an escape (`\x1b`, `\u202e`, `\n`), everything else as it is.
 */
export function printable(text: string | number | null | undefined): string {
  return String(text ?? "").replace(UNSAFE, escape);
}

/** The same for a block of lines the CLI wrote (commander's messages quoting an argument): its own newlines stay. */
export function printableLines(text: string): string {
  return text.split("\n").map(printable).join("\n");
}

/** What JSON.stringify leaves raw in strings (it escapes C0 controls and lone surrogates itself). */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** JSON for a terminal: the same data, DEL, C1 and bidirectional controls written as \u escapes too. */
export function printableJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(UNSAFE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
