import { describe, expect, it } from "vitest";
import { s3NotificationBody } from "./s3.js";

describe("s3NotificationBody", () => {
  it("is an S3 event notification 2.1 with an increasing sequencer", () => {
    const record = {
      eventName: "ObjectCreated:Put",
      eventTime: "2026-01-01T00:00:00.000Z",
      s3: { bucket: { name: "work" }, object: { key: "a b.png", size: 3, eTag: "abc" } },
    };
    const first = JSON.parse(s3NotificationBody(record, "eu-west-1"));
    const second = JSON.parse(s3NotificationBody(record, "eu-west-1"));
    expect(first.Records[0]).toMatchObject({
      eventVersion: "2.1",
      eventSource: "aws:s3",
      awsRegion: "eu-west-1",
      eventName: "ObjectCreated:Put",
      s3: { bucket: { name: "work", arn: "arn:aws:s3:::work" }, object: { key: "a+b.png", size: 3, eTag: "abc" } },
    });
    expect(second.Records[0].s3.object.sequencer > first.Records[0].s3.object.sequencer).toBe(true);
  });
});
