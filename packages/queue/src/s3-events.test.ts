import { describe, expect, it } from "vitest";
import { PoisonMessageError } from "./errors.js";
import { decodeS3Key, encodeS3Key, objectCreatedEvent, parseS3Event } from "./s3-events.js";

const record = (key: string, extra: Record<string, unknown> = {}) => ({
  eventVersion: "2.1",
  eventSource: "aws:s3",
  awsRegion: "us-east-1",
  eventTime: "2026-11-26T18:00:00.000Z",
  eventName: "ObjectCreated:Put",
  s3: {
    s3SchemaVersion: "1.0",
    configurationId: "images",
    bucket: { name: "docpipe-work", arn: "arn:aws:s3:::docpipe-work" },
    object: { key, size: 1234, eTag: "abc", sequencer: "0055AED6DCD90281E5", ...extra },
  },
});

describe("encodeS3Key", () => {
  it("form-encodes keys the way S3 notifications carry them", () => {
    expect(encodeS3Key("batches/a b/images/1.png")).toBe("batches/a+b/images/1.png");
    expect(encodeS3Key("in/rapport (final)+v2.pdf")).toBe("in/rapport+%28final%29%2Bv2.pdf");
    expect(encodeS3Key("in/é.pdf")).toBe("in/%C3%A9.pdf");
  });

  it("round-trips through the decoding consumers use", () => {
    const key = "in/a b+c (1)/ü!.pdf";
    expect(decodeURIComponent(encodeS3Key(key).replace(/\+/g, " "))).toBe(key);
  });
});

describe("objectCreatedEvent", () => {
  it("reads back as the object it announces", () => {
    const key = "batches/b/documents/d/images/7.png";
    expect(parseS3Event(objectCreatedEvent("work", key, "eu-west-1", "docpipe-reconciler"))).toEqual({
      kind: "records",
      records: [{ bucket: "work", key, eventName: "ObjectCreated:Put" }],
    });
  });
});

describe("parseS3Event", () => {
  it("recognises the test event S3 sends when a notification is configured", () => {
    const test = {
      Service: "Amazon S3",
      Event: "s3:TestEvent",
      Time: "2026-11-26T18:00:00.000Z",
      Bucket: "docpipe-work",
      RequestId: "5582815E1AEA5ADF",
      HostId: "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    };
    expect(parseS3Event(test)).toEqual({ kind: "test" });
    expect(parseS3Event(JSON.stringify(test))).toEqual({ kind: "test" });
  });

  it("reads bucket, decoded key, size and event name from every record", () => {
    const key = "batches/b/documents/d/images/1.png";
    const body = { Records: [record(key), record("a+b%2Bc%20d%C3%A9.png", { size: 7 })] };
    expect(parseS3Event(JSON.stringify(body))).toEqual({
      kind: "records",
      records: [
        { bucket: "docpipe-work", key, size: 1234, eventName: "ObjectCreated:Put" },
        { bucket: "docpipe-work", key: "a b+c dé.png", size: 7, eventName: "ObjectCreated:Put" },
      ],
    });
  });

  it("leaves size out when the record has none (delete events)", () => {
    const r = record("k");
    delete (r.s3.object as { size?: number }).size;
    r.eventName = "ObjectRemoved:Delete";
    expect(parseS3Event({ Records: [r] })).toEqual({
      kind: "records",
      records: [{ bucket: "docpipe-work", key: "k", eventName: "ObjectRemoved:Delete" }],
    });
  });

  it("unwraps an SNS envelope", () => {
    const sns = { Type: "Notification", MessageId: "m", TopicArn: "arn", Message: JSON.stringify({ Records: [record("x+y")] }) };
    const parsed = parseS3Event(sns);
    expect(parsed.kind === "records" && parsed.records[0]?.key).toBe("x y");
  });

  it.each([
    ["not JSON", "{nope"],
    ["an array", []],
    ["null", null],
    ["no Records", { hello: "world" }],
    ["a record without s3", { Records: [{ eventName: "ObjectCreated:Put" }] }],
    ["a record without key", { Records: [{ ...record("k"), s3: { bucket: { name: "b" }, object: {} } }] }],
    ["bad percent-encoding", { Records: [record("%E0%A4%A")] }],
  ])("rejects %s as poison", (_label, body) => {
    expect(() => parseS3Event(body)).toThrow(PoisonMessageError);
  });
});

describe("decodeS3Key", () => {
  it("turns + into space before percent-decoding, so %2B stays a plus", () => {
    expect(decodeS3Key("my+file%2B1.pdf")).toBe("my file+1.pdf");
    expect(decodeS3Key("plain/key.pdf")).toBe("plain/key.pdf");
  });
});
