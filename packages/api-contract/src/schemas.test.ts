import { describe, expect, it } from "vitest";
import { bucketNameProblem, CreateBatchBody, decodeCursor, encodeCursor, ListDocumentsQuery, overlappingPrefixes } from "./schemas.js";

describe("bucketNameProblem", () => {
  it.each(["docpipe-staging", "abc", "my.bucket.name", "a1-b2", "x".repeat(63)])("accepts %s", (name) => {
    expect(bucketNameProblem(name)).toBeUndefined();
  });

  it.each([
    ["ab", "3 to 63"],
    ["x".repeat(64), "3 to 63"],
    ["My-Bucket", "lowercase"],
    ["under_score", "lowercase"],
    ["-leading", "begin and end"],
    ["trailing-", "begin and end"],
    ["two..dots", "adjacent dots"],
    ["192.168.5.4", "IP address"],
    ["xn--bucket", "xn--"],
    ["sthree-bucket", "sthree-"],
    ["bucket-s3alias", "-s3alias"],
    ["bucket--ol-s3", "--ol-s3"],
    ["bucket.mrap", ".mrap"],
  ])("rejects %s (%s)", (name, reason) => {
    expect(bucketNameProblem(name)).toContain(reason);
  });
});

describe("overlappingPrefixes", () => {
  it("finds prefixes that contain others, and repeats", () => {
    expect(overlappingPrefixes(["a/", "b/", "a/x/"])).toEqual([["a/", "a/x/"]]);
    expect(overlappingPrefixes(["a/", "a/"])).toEqual([["a/", "a/"]]);
    expect(overlappingPrefixes(["", "a/"])).toEqual([["", "a/"]]);
    expect(overlappingPrefixes(["a/", "ab/", "b"])).toEqual([]);
  });
});

describe("CreateBatchBody", () => {
  it("accepts a bucket, prefixes and a label", () => {
    expect(CreateBatchBody.parse({ bucket: "inbox", prefixes: ["x"], label: " run 1 " }).label).toBe("run 1");
    expect(CreateBatchBody.safeParse({ bucket: "inbox", prefixes: [""] }).success).toBe(true);
  });

  it("rejects unknown fields, empty prefixes, overlaps and bad buckets", () => {
    const messages = (v: unknown) => CreateBatchBody.safeParse(v).error?.issues.map((i) => i.message).join("; ");
    expect(messages({ bucket: "inbox", prefixes: ["a/"], extra: 1 })).toMatch(/extra/);
    expect(messages({ bucket: "inbox", prefixes: [] })).toMatch(/at least one prefix/);
    expect(messages({ bucket: "inbox", prefixes: ["a/", "a/b/"] })).toMatch(/already contains/);
    expect(messages({ bucket: "Inbox", prefixes: ["a/"] })).toMatch(/invalid S3 bucket name/);
    expect(messages({ bucket: "inbox", prefixes: ["/abs"] })).toMatch(/must not start with \//);
  });
});

describe("cursors", () => {
  it("round-trips keys and rejects anything else", () => {
    const key = "batches/ünïcode key.pdf";
    expect(decodeCursor(encodeCursor(key))).toBe(key);
    expect(decodeCursor("not-a-cursor")).toBeUndefined();
  });

  it("coerces and bounds the page size", () => {
    expect(ListDocumentsQuery.parse({ limit: "5" }).limit).toBe(5);
    expect(ListDocumentsQuery.parse({}).limit).toBe(100);
    expect(ListDocumentsQuery.safeParse({ limit: "0" }).success).toBe(false);
    expect(ListDocumentsQuery.safeParse({ limit: "1001" }).success).toBe(false);
    expect(ListDocumentsQuery.safeParse({ state: "bogus" }).success).toBe(false);
  });
});
