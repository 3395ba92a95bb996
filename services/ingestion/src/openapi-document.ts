import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import { createPrisma } from "@docpipe/db";
import { createLogger } from "@docpipe/queue";
import { buildApp } from "./app.js";

/**
 * The API's OpenAPI document, as `/docs/json` serves it, built without a database, queue or
 * bucket (nothing is called): for `pnpm --filter @docpipe/ingestion openapi` (client
 * generators) and the redocly lint of `pnpm check`.
 */
export async function openApiDocument(): Promise<unknown> {
  const unused = "http://127.0.0.1:9";
  const s3 = new S3Client({ region: "us-east-1", endpoint: unused });
  const sqs = new SQSClient({ region: "us-east-1", endpoint: unused });
  const prisma = createPrisma({ databaseUrl: `postgresql://docs@127.0.0.1:9/docs` });
  const app = buildApp({
    prisma,
    s3,
    sqs,
    queueUrls: { ingest: { url: `${unused}/000000000000/ingest`, dlqUrl: `${unused}/000000000000/ingest-dlq` } },
    workBucket: "docpipe-work",
    logger: createLogger({ service: "ingestion", level: "silent" }),
    resumeOnStart: false,
  });
  try {
    await app.ready();
    return app.swagger();
  } finally {
    await app.close();
    await prisma.$disconnect();
    s3.destroy();
    sqs.destroy();
  }
}
