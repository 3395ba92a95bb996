import { S3Client } from "@aws-sdk/client-s3";
import { pino } from "pino";
import { z } from "zod";
import { startReferenceModel } from "./server.js";

/** Runs the reference model on its own (docker compose, or beside a pipeline on another machine). */
const Env = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default("0.0.0.0"),
  AWS_REGION: z.string().default("us-east-1"),
  AWS_ENDPOINT_URL_S3: z.url().optional(),
  S3_FORCE_PATH_STYLE: z.enum(["true", "false"]).default("false"),
  LOG_LEVEL: z.string().default("info"),
});

async function main(): Promise<void> {
  const parsed = Env.safeParse(process.env);
  if (!parsed.success) throw new Error(`invalid configuration: ${parsed.error.message}`);
  const env = parsed.data;
  const logger = pino({ level: env.LOG_LEVEL, base: { service: "reference-model" } });
  const s3 = new S3Client({
    region: env.AWS_REGION,
    forcePathStyle: env.S3_FORCE_PATH_STYLE === "true",
    ...(env.AWS_ENDPOINT_URL_S3 && { endpoint: env.AWS_ENDPOINT_URL_S3 }),
  });
  try {
    const model = await startReferenceModel({ s3, port: env.PORT, host: env.HOST, logger });
    await new Promise<void>((resolve) => {
      process.once("SIGTERM", resolve);
      process.once("SIGINT", resolve);
    });
    await model.stop();
  } finally {
    s3.destroy();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
