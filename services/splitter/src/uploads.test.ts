import { describe, expect, it } from "vitest";
import { PieceUploads } from "./uploads.js";

const tick = () => new Promise<void>((r) => setTimeout(r, 5));

describe("PieceUploads", () => {
  it("runs at most maxCount at once, and a piece over maxBytes alone", async () => {
    const uploads = new PieceUploads(2, 100);
    let now = 0;
    let peak = 0;
    const seen: number[] = [];
    const upload = (bytes: number) =>
      uploads.add(bytes, async () => {
        now++;
        peak = Math.max(peak, now);
        seen.push(now);
        await tick();
        now--;
      });
    for (const bytes of [10, 10, 10, 500, 10]) await upload(bytes);
    await uploads.settle();
    expect(peak).toBe(2);
    // The 500-byte piece (the fourth) started with nothing else running.
    expect(seen[3]).toBe(1);
  });

  it("throws the first failure once every started upload has ended", async () => {
    const uploads = new PieceUploads(4, 1000);
    const ended: string[] = [];
    await uploads.add(1, async () => {
      await tick();
      ended.push("slow");
    });
    await uploads.add(1, async () => {
      throw new Error("S3 said no");
    });
    await tick();
    await expect(uploads.add(1, async () => void ended.push("never"))).rejects.toThrow("S3 said no");
    await expect(uploads.settle()).rejects.toThrow("S3 said no");
    expect(ended).toEqual(["slow"]);
  });
});
