// The standard security handler, revision 2 (RC4, 40-bit key): PDF 1.7 §7.6.3, algorithms 2-4,
// for the hostile fixtures' encrypted files. Written out here (rather than letting mupdf
// encrypt) so the fixture is byte-for-byte deterministic: mupdf salts AES encryption randomly.
import { createHash } from "node:crypto";

const PASSWORD_PAD = Buffer.from("28bf4e5e4e758a4164004e56fffa01082e2e00b6d0683e802f0ca9fe6453697a", "hex");

function rc4(key: Uint8Array, data: Uint8Array): Buffer {
  const s = Array.from({ length: 256 }, (_, i) => i);
  for (let i = 0, j = 0; i < 256; i++) {
    j = (j + s[i]! + key[i % key.length]!) & 255;
    [s[i], s[j]] = [s[j]!, s[i]!];
  }
  const out = Buffer.alloc(data.length);
  for (let n = 0, i = 0, j = 0; n < data.length; n++) {
    i = (i + 1) & 255;
    j = (j + s[i]!) & 255;
    [s[i], s[j]] = [s[j]!, s[i]!];
    out[n] = data[n]! ^ s[(s[i]! + s[j]!) & 255]!;
  }
  return out;
}

function md5(...parts: Uint8Array[]): Buffer {
  const h = createHash("md5");
  for (const p of parts) h.update(p);
  return h.digest();
}

function padPassword(pw: string): Buffer {
  return Buffer.concat([Buffer.from(pw, "latin1"), PASSWORD_PAD]).subarray(0, 32);
}

export interface Rc4Encryption {
  objectNumber: number;
  dict: string;
  trailer: string;
  stream(num: number, data: Uint8Array): Buffer;
}

/** What `buildPdf` needs to encrypt a document's streams with these passwords; the /Encrypt dictionary is object `objectNumber`. */
export function rc4Encryption(objectNumber: number, userPassword: string, ownerPassword: string): Rc4Encryption {
  const id = md5(Buffer.from("docpipe hostile encrypted fixture"));
  const o = rc4(md5(padPassword(ownerPassword)).subarray(0, 5), padPassword(userPassword));
  const p = -44; // print, modify, copy, annotate allowed; the reserved bits set as the spec asks
  const pBytes = Buffer.alloc(4);
  pBytes.writeInt32LE(p);
  const key = md5(padPassword(userPassword), o, pBytes, id).subarray(0, 5);
  const u = rc4(key, PASSWORD_PAD);
  return {
    objectNumber,
    dict: `<< /Filter /Standard /V 1 /R 2 /Length 40 /O <${o.toString("hex")}> /U <${u.toString("hex")}> /P ${p} >>`,
    trailer: `/Encrypt ${objectNumber} 0 R /ID [<${id.toString("hex")}> <${id.toString("hex")}>]`,
    stream: (num, data) => {
      const objKey = md5(key, Buffer.from([num & 255, (num >> 8) & 255, (num >> 16) & 255, 0, 0])).subarray(0, 10);
      return rc4(objKey, data);
    },
  };
}
