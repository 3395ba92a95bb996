import type { ListObjectsV2CommandOutput } from "@aws-sdk/client-s3";

/** What the listing uses of a ListObjectsV2 page. */
export type ListedPage = Pick<ListObjectsV2CommandOutput, "Contents" | "IsTruncated" | "NextContinuationToken">;

/** Prefixes counted at once. */
export const COUNT_LANES = 4;

/**
 * Up to this many keys of the pages a count listed are kept for the listing that follows, so
 * a batch of up to this size is listed once, not twice (about 10 MB: a key and a size each).
 */
export const MAX_COUNTED_KEYS_KEPT = 100_000;

/**
 * The pages a count listed (keys and sizes only), by where they start, each handed out once.
 * Only memory: a listing that resumes after a crash lists its pages again from its saved position.
 */
export class CountedPages {
  private readonly pages = new Map<string, ListedPage>();
  private keys = 0;

  private static at(prefixIndex: number, token: string | null, startAfter: string | null): string {
    return JSON.stringify([prefixIndex, token, startAfter]);
  }

  keep(prefixIndex: number, token: string | null, startAfter: string | null, out: ListedPage): void {
    const contents = (out.Contents ?? []).map((o) => ({ Key: o.Key, Size: o.Size }));
    if (this.keys + contents.length > MAX_COUNTED_KEYS_KEPT) return;
    this.keys += contents.length;
    this.pages.set(CountedPages.at(prefixIndex, token, startAfter), {
      Contents: contents,
      IsTruncated: out.IsTruncated,
      NextContinuationToken: out.NextContinuationToken,
    });
  }

  take(prefixIndex: number, token: string | null, startAfter: string | null): ListedPage | undefined {
    const at = CountedPages.at(prefixIndex, token, startAfter);
    const page = this.pages.get(at);
    this.pages.delete(at);
    return page;
  }
}
