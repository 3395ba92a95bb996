// Starts the reference model (packages/reference-model) for docker compose: the same
// stand-in the local stack and the tests use, listening on all interfaces.
import { createRequire } from "node:module";
import type * as S3 from "@aws-sdk/client-s3";
import { startReferenceModel } from "../packages/reference-model/src/index.js";

// Resolve the AWS SDK the way the model package does (pnpm keeps dependencies per package).
const require = createRequire(new URL("../packages/reference-model/package.json", import.meta.url));
const { S3Client } = require("@aws-sdk/client-s3") as typeof S3;

const s3 = new S3Client({
  region: process.env.AWS_REGION ?? "us-east-1",
  forcePathStyle: process.env.S3_FORCE_PATH_STYLE === "true",
  ...(process.env.AWS_ENDPOINT_URL_S3 && { endpoint: process.env.AWS_ENDPOINT_URL_S3 }),
});
const model = await startReferenceModel({ s3, host: "0.0.0.0", port: Number(process.env.PORT ?? 8080) });
const stop = (): void => void model.stop().finally(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
