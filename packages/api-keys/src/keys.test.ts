import { describe, expect, it } from "vitest";
import { allowListProblem, generateKey, hashKey, prefixWithin } from "./index.js";

describe("generateKey", () => {
  it("makes a dp_ key whose prefix is its start and whose hash is the SHA-256 of the whole key", () => {
    const { key, prefix, hash } = generateKey();
    expect(key).toMatch(/^dp_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/);
    expect(key.startsWith(`${prefix}_`)).toBe(true);
    expect(hash).toBe(hashKey(key));
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("never repeats a secret", () => {
    const keys = new Set(Array.from({ length: 1000 }, () => generateKey().key));
    expect(keys.size).toBe(1000);
  });
});

describe("allowListProblem", () => {
  const key = { prefix: "dp_00000000", allowedBuckets: ["inbox"], allowedPrefixes: ["2026/", "scans/"] };

  it("lets through prefixes under an allowed one, in an allowed bucket", () => {
    expect(allowListProblem(key, "inbox", ["2026/11/", "scans/"])).toBeUndefined();
  });

  it("names the bucket or the prefixes outside the list", () => {
    expect(allowListProblem(key, "other", ["2026/"])).toMatchObject({ code: "bucket_not_allowed" });
    expect(allowListProblem(key, "inbox", ["2026/", "2025/", ""])).toMatchObject({
      code: "prefix_not_allowed",
      details: { prefixes: ["2025/", ""] },
    });
  });

  it("treats * as any bucket and no prefixes as any prefix", () => {
    expect(allowListProblem({ ...key, allowedBuckets: ["*"], allowedPrefixes: [] }, "anything", [""])).toBeUndefined();
  });
});

describe("prefixWithin: allowed prefixes are folders, matched on path boundaries", () => {
  it("lets a prefix through at and below the folder, with or without the allowed prefix's slash", () => {
    for (const allowed of ["team-a", "team-a/"]) {
      for (const p of ["team-a/", "team-a/2026/", "team-a/x.pdf"]) expect(prefixWithin(p, allowed)).toBe(true);
    }
    expect(prefixWithin("anything", "")).toBe(true);
  });

  it("refuses a sibling that only shares the first characters, the bare name, and what is above", () => {
    for (const allowed of ["team-a", "team-a/"]) {
      for (const p of ["team-ab/", "team-ab", "team-a", "team-", "", "team-a-old/x"]) expect(prefixWithin(p, allowed)).toBe(false);
    }
  });
});
