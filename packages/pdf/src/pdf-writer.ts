import { open, type FileHandle } from "node:fs/promises";

/**
 * A minimal PDF writer that streams objects to a file as they are produced and writes a classic
 * xref table at the end, so a document of any size is generated with one page in memory.
 * Test-corpus use only: it writes what it is told, with no validation.
 */
export class StreamingPdfWriter {
  private fh: FileHandle | undefined;
  private position = 0;
  private readonly offsets = new Map<number, number>();
  private nextObject = 1;

  private constructor(private readonly path: string) {}

  static async create(path: string): Promise<StreamingPdfWriter> {
    const writer = new StreamingPdfWriter(path);
    writer.fh = await open(path, "w");
    // A binary comment line tells transfer tools the file is binary, as the spec suggests.
    await writer.raw(Buffer.from("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "latin1"));
    return writer;
  }

  get bytesWritten(): number {
    return this.position;
  }

  /** Reserves an object number to be written later (e.g. the page tree, written last). */
  reserve(): number {
    return this.nextObject++;
  }

  async object(body: string, num = this.reserve()): Promise<number> {
    this.offsets.set(num, this.position);
    await this.raw(Buffer.from(`${num} 0 obj\n${body}\nendobj\n`, "latin1"));
    return num;
  }

  /** Writes a stream object; `dict` is the dictionary's inside, without /Length. */
  async stream(dict: string, data: Uint8Array, num = this.reserve()): Promise<number> {
    this.offsets.set(num, this.position);
    await this.raw(Buffer.from(`${num} 0 obj\n<< ${dict} /Length ${data.length} >>\nstream\n`, "latin1"));
    await this.raw(data);
    await this.raw(Buffer.from("\nendstream\nendobj\n", "latin1"));
    return num;
  }

  /** Writes the xref table and trailer and closes the file. Returns the file size. */
  async finish(rootObject: number): Promise<number> {
    const size = this.nextObject;
    const xrefAt = this.position;
    const lines = ["xref", `0 ${size}`, "0000000000 65535 f\r"];
    for (let n = 1; n < size; n++) {
      const at = this.offsets.get(n);
      if (at === undefined) throw new Error(`object ${n} of ${this.path} was reserved but never written`);
      lines.push(`${String(at).padStart(10, "0")} 00000 n\r`);
    }
    lines.push("trailer", `<< /Size ${size} /Root ${rootObject} 0 R >>`, "startxref", String(xrefAt), "%%EOF", "");
    await this.raw(Buffer.from(lines.join("\n"), "latin1"));
    await this.close();
    return this.position;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }

  private async raw(data: Uint8Array): Promise<void> {
    if (!this.fh) throw new Error(`${this.path} is closed`);
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, this.position);
      done += bytesWritten;
      this.position += bytesWritten;
    }
  }
}

/** A number as PDF syntax: no exponent, at most 4 decimals. */
export function pdfNum(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(4).replace(/0+$/, "").replace(/\.$/, "");
}
