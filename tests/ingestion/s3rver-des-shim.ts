import crypto from "node:crypto";

/**
 * s3rver 3.7.1 encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 (Node 17+)
 * only offers through its legacy provider: without `--openssl-legacy-provider` every truncated
 * listing (more keys than MaxKeys) fails with a 500 InternalError, so paginated listings cannot
 * be tested. When DES is missing, this maps s3rver's "des" (8-byte key and IV) onto AES-128-CBC
 * with the key and IV doubled. The tokens stay opaque and round-trip, which is all S3 promises.
 * Remove once the local stack patches s3rver itself.
 */
export function installS3rverDesShim(): void {
  try {
    crypto.createCipheriv("des", Buffer.alloc(8), Buffer.alloc(8));
    return; // DES available (legacy provider loaded)
  } catch {
    // fall through
  }
  const c = crypto as unknown as Record<string, (...args: unknown[]) => unknown>;
  const wrap = (original: (...args: unknown[]) => unknown) =>
    function (this: unknown, algorithm: unknown, key: unknown, iv: unknown, ...rest: unknown[]) {
      if (algorithm === "des" && Buffer.isBuffer(key) && Buffer.isBuffer(iv) && key.length === 8 && iv.length === 8) {
        return original.call(this, "aes-128-cbc", Buffer.concat([key, key]), Buffer.concat([iv, iv]), ...rest);
      }
      return original.call(this, algorithm, key, iv, ...rest);
    };
  c.createCipheriv = wrap(c.createCipheriv!);
  c.createDecipheriv = wrap(c.createDecipheriv!);
}
