/**
 * Uploads of a split's pieces, several at once. A piece's upload and its message take a few
 * round trips to S3, the database and SQS, while the worker thread makes the next piece in a few
 * milliseconds: one upload at a time left a split waiting on S3 for most of its time.
 *
 * At most `maxCount` run at once and, together, at most `maxBytes` of bodies (a larger piece runs
 * alone), so memory stays bounded however large a document's pages are. The first failure is
 * thrown by the next `add` or by `settle`, once nothing is running any more.
 */
export class PieceUploads {
  private readonly running = new Set<Promise<void>>();
  private bytes = 0;
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly maxCount: number,
    private readonly maxBytes: number,
  ) {}

  /** Waits for room, then starts `upload` (of a body of `bytes`) without waiting for it. */
  async add(bytes: number, upload: () => Promise<void>): Promise<void> {
    while (this.running.size > 0 && !this.failure && (this.running.size >= this.maxCount || this.bytes + bytes > this.maxBytes)) {
      await Promise.race(this.running);
    }
    if (this.failure) {
      await this.idle();
      throw this.failure.error;
    }
    this.bytes += bytes;
    const run: Promise<void> = upload()
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => {
        this.running.delete(run);
        this.bytes -= bytes;
      });
    this.running.add(run);
  }

  /** Waits for every upload started; throws the first that failed. */
  async settle(): Promise<void> {
    await this.idle();
    if (this.failure) throw this.failure.error;
  }

  /** Waits for every upload started, whatever its outcome: what a split that failed waits for before it ends. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running);
  }
}
