import { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { describe, expect, it } from "vitest";
import { AwsChunkedDecoder } from "./aws-chunked.js";

const framed =
  "5;chunk-signature=abc\r\nhello\r\n" + "7\r\n, world\r\n" + "0\r\n" + "x-amz-checksum-crc32:AAAAAA==\r\n\r\n";

describe("AwsChunkedDecoder", () => {
  it("keeps the data and drops the framing and trailers, however the bytes are split", async () => {
    for (const size of [1, 2, 3, 7, framed.length]) {
      const pieces = [];
      for (let i = 0; i < framed.length; i += size) pieces.push(Buffer.from(framed.slice(i, i + size)));
      expect(await text(Readable.from(pieces).pipe(new AwsChunkedDecoder()))).toBe("hello, world");
    }
  });

  it("fails a body cut off before its last chunk", async () => {
    await expect(text(Readable.from([Buffer.from("5\r\nhel")]).pipe(new AwsChunkedDecoder()))).rejects.toThrow(/ended before/);
  });
});
