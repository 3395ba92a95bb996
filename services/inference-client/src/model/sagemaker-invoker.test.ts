import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { SageMakerRuntimeClient } from "@aws-sdk/client-sagemaker-runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelRejectedError, ModelThrottledError, ModelUnavailableError } from "./errors.js";
import { SageMakerModelInvoker } from "./invoker.js";

/**
 * A stand-in for the SageMaker Runtime REST API (POST /endpoints/{name}/invocations), answering
 * per endpoint name the way the service does, so the real SDK client parses real error shapes.
 */
let server: Server;
let client: SageMakerRuntimeClient;
const good = { model: { name: "m", version: "2" }, output: { inkCoverage: 0.1 }, features: ["ink"] };
const bodies: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const name = /^\/endpoints\/([^/]+)\/invocations$/.exec(req.url ?? "")?.[1];
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      bodies.push(body);
      const error = (status: number, type: string, extra: object = {}) =>
        res
          .writeHead(status, { "content-type": "application/json", "x-amzn-errortype": type })
          .end(JSON.stringify({ message: `${type} from the stand-in`, ...extra }));
      switch (name) {
        case "ok":
          return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(good));
        case "throttled":
          return error(400, "ThrottlingException");
        case "unavailable":
          return error(503, "ServiceUnavailable");
        case "container-5xx":
          return error(424, "ModelError", { OriginalStatusCode: 503, OriginalMessage: "overloaded" });
        case "container-4xx":
          return error(424, "ModelError", { OriginalStatusCode: 400, OriginalMessage: "not an image" });
        default:
          return error(400, "ValidationError");
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  client = new SageMakerRuntimeClient({
    region: "us-east-1",
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    maxAttempts: 1,
  });
});
afterAll(async () => {
  client.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

const call = (endpointName: string) =>
  new SageMakerModelInvoker({ client, endpointName }).invoke({ bucket: "b", key: "k.png" }, new AbortController().signal);

describe("SageMakerModelInvoker", () => {
  it("sends {bucket, key} and returns the model's answer", async () => {
    await expect(call("ok")).resolves.toEqual(good);
    expect(JSON.parse(bodies.at(-1)!)).toEqual({ bucket: "b", key: "k.png" });
  });

  it("retries throttling, an unavailable service and a container 5xx", async () => {
    await expect(call("throttled")).rejects.toBeInstanceOf(ModelThrottledError);
    await expect(call("throttled")).rejects.toMatchObject({ code: "model_throttled" });
    await expect(call("unavailable")).rejects.toBeInstanceOf(ModelUnavailableError);
    await expect(call("unavailable")).rejects.not.toBeInstanceOf(ModelThrottledError);
    await expect(call("container-5xx")).rejects.toMatchObject({ code: "sagemaker_ModelError", status: 503 });
  });

  it("does not retry what the container or the service refused", async () => {
    await expect(call("container-4xx")).rejects.toBeInstanceOf(ModelRejectedError);
    await expect(call("no-such-endpoint")).rejects.toMatchObject({ code: "sagemaker_ValidationError" });
  });
});
