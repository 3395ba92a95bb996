import { describe, expect, it } from "vitest";
import { synth } from "./synth.js";

// Issue 13: the work bucket, which the pipeline writes, is never a source.
describe("staging and work are never the same bucket", () => {
  it("refuses a stagingBucketName that is this stack's own work or logs bucket", () => {
    for (const name of ["docpipe-storagework1a2b3c4d-1xyz2abc3def", "docpipe-storagelogs5e6f7a8b-9ghi"]) {
      expect(() => synth({ stagingBucketName: name, allowHttp: "true" })).toThrowError(/this stack's own work or logs bucket/);
    }
  });

});
