// Drawing primitives of the generated corpus: seeded randomness, pseudo-words, embedded fonts, a page canvas.
import { join } from "node:path";
import * as mupdf from "mupdf";
import { seededRandom } from "../../../../tests/fixtures/wait.ts";

export type Rng = () => number;

/** The same seed, the same corpus (mulberry32, as the tests' fault seeds). */
export const rng = (seed: number): Rng => seededRandom(seed);
export const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
export const between = (r: Rng, lo: number, hi: number): number => lo + r() * (hi - lo);
export const n = (x: number): string => (Math.round(x * 100) / 100).toString();

export const SYLLABLES = ["ta", "ri", "mon", "ex", "ver", "sa", "lo", "pen", "qui", "dor", "al", "mi", "tur", "ne", "cas", "ul",
  "pro", "ra", "sed", "in", "gra", "te", "vo", "lum", "est", "cor", "di", "na", "per", "os", "fa", "ment"] as const;

export function word(r: Rng): string {
  const parts = 1 + Math.floor(r() ** 1.6 * 4);
  let w = "";
  for (let i = 0; i < parts; i++) w += pick(r, SYLLABLES);
  return w;
}

export function sentence(r: Rng): string {
  const words = Array.from({ length: 6 + Math.floor(r() * 14) }, () => word(r));
  words[0] = words[0]!.charAt(0).toUpperCase() + words[0]!.slice(1);
  for (let i = 2; i < words.length - 1; i++) if (r() < 0.08) words[i] += ",";
  return words.join(" ") + pick(r, [".", ".", ".", ".", "?", ";", ":"]);
}

export const paragraph = (r: Rng, sentences: number): string => Array.from({ length: sentences }, () => sentence(r)).join(" ");

/** A PDF text string: only ASCII is generated, so escaping the three specials is enough. */
export const str = (s: string): string => `(${s.replace(/[\\()]/g, (c) => `\\${c}`)})`;

/** One embedded font of the document and its widths, for line breaking. */
export class FontRef {
  readonly ref: mupdf.PDFObject;
  private readonly font: mupdf.Font;
  private readonly widths = new Map<string, number>();
  constructor(doc: mupdf.PDFDocument, file: string) {
    this.font = new mupdf.Font(file, join(FONT_DIR, file));
    this.ref = doc.addSimpleFont(this.font, "Latin");
  }
  width(s: string, size: number): number {
    let w = 0;
    for (const ch of s) {
      let cw = this.widths.get(ch);
      if (cw === undefined) {
        const glyph = this.font.encodeCharacter(ch);
        cw = this.font.advanceGlyph(glyph);
        this.widths.set(ch, cw);
      }
      w += cw;
    }
    return w * size;
  }
}

/** Embedded as real documents embed theirs (Debian: fonts-dejavu-core), subset on save. */
export const FONT_DIR = process.env.DEJAVU_DIR ?? "/usr/share/fonts/truetype/dejavu";

export type Fonts = Record<"serif" | "italic" | "sans" | "bold" | "mono", FontRef>;

export function embedFonts(doc: mupdf.PDFDocument): Fonts {
  return {
    serif: new FontRef(doc, "DejaVuSerif.ttf"),
    italic: new FontRef(doc, "DejaVuSerif-Italic.ttf"),
    sans: new FontRef(doc, "DejaVuSans.ttf"),
    bold: new FontRef(doc, "DejaVuSans-Bold.ttf"),
    mono: new FontRef(doc, "DejaVuSansMono.ttf"),
  };
}

export const FONT_NAMES = { serif: "F1", italic: "F2", sans: "F3", bold: "F4", mono: "F5" } as const;
export type FontKey = keyof typeof FONT_NAMES;

/** A page's content stream and the resources it uses. */
export class Canvas {
  readonly ops: string[] = [];
  readonly xobjects: Record<string, mupdf.PDFObject> = {};
  /** Only the fonts a page uses go into its resources, so unused ones are not embedded at all. */
  private readonly used = new Set<FontKey>();
  constructor(
    readonly fonts: Fonts,
    readonly width: number,
    readonly height: number,
  ) {}
  /** Left-aligned lines broken to `measure` points; returns the y below the last line. */
  text(s: string, x: number, y: number, measure: number, font: FontKey, size: number, leading = size * 1.25): number {
    const f = this.fonts[font];
    this.used.add(font);
    const lines: string[] = [];
    let line = "";
    for (const w of s.split(" ")) {
      const next = line ? `${line} ${w}` : w;
      if (line && f.width(next, size) > measure) {
        lines.push(line);
        line = w;
      } else line = next;
    }
    if (line) lines.push(line);
    this.ops.push(`BT /${FONT_NAMES[font]} ${n(size)} Tf ${n(leading)} TL ${n(x)} ${n(y)} Td`);
    for (const l of lines) this.ops.push(`${str(l)} Tj T*`);
    this.ops.push("ET");
    return y - lines.length * leading;
  }
  line(text: string, x: number, y: number, font: FontKey, size: number): void {
    this.used.add(font);
    this.ops.push(`BT /${FONT_NAMES[font]} ${n(size)} Tf ${n(x)} ${n(y)} Td ${str(text)} Tj ET`);
  }
  image(name: string, ref: mupdf.PDFObject, x: number, y: number, w: number, h: number): void {
    this.xobjects[name] = ref;
    this.ops.push(`q ${n(w)} 0 0 ${n(h)} ${n(x)} ${n(y)} cm /${name} Do Q`);
  }
  addTo(doc: mupdf.PDFDocument, rotate: 0 | 90 = 0): void {
    const Font: Record<string, mupdf.PDFObject> = {};
    for (const k of this.used) Font[FONT_NAMES[k]] = this.fonts[k].ref;
    const resources: Record<string, unknown> = { Font };
    if (Object.keys(this.xobjects).length > 0) resources.XObject = this.xobjects;
    doc.insertPage(-1, doc.addPage([0, 0, this.width, this.height], rotate, resources, this.ops.join("\n")));
  }
}

export function save(doc: mupdf.PDFDocument): Uint8Array {
  // Fonts subset, content streams and fonts compressed, as a producer would ship them.
  doc.subsetFonts();
  const buf = doc.saveToBuffer("compress,compress-fonts,garbage=compact");
  try {
    return buf.asUint8Array().slice();
  } finally {
    buf.destroy();
  }
}

