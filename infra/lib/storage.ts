import { aws_iam as iam, aws_s3 as s3, Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import { INTERMEDIATE_TAG } from "@docpipe/queue";
import { Construct } from "constructs";
import { ConfigError } from "./context.js";

// The splitters tag intermediate PDFs at upload (INTERMEDIATE_TAG=chunk|page): lifecycle
// filters match a key prefix or tags, never `chunks/` in the middle of a key.

/** Key patterns in the work bucket, as IAM resource patterns (see packages/queue/src/keys.ts). */
export const workKeys = {
  chunks: "batches/*/documents/*/chunks/*",
  pages: "batches/*/documents/*/pages/*",
  images: "batches/*/documents/*/images/*",
} as const;

export interface StorageProps {
  /** An existing bucket of source PDFs; unset creates one. */
  readonly stagingBucketName?: string;
  /** Days before tagged intermediates (chunks and single-page PDFs) are deleted. */
  readonly intermediateRetentionDays: number;
  /** A role outside the stack (the model endpoint's) that reads the page PNGs. */
  readonly imageReaderRoleArn?: string;
}

const secure = {
  encryption: s3.BucketEncryption.S3_MANAGED,
  blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
  enforceSSL: true,
  objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
} as const;

/**
 * The staging bucket (source PDFs, possibly an existing bucket) and the work bucket (chunks,
 * single-page PDFs and PNGs). SSE-S3 rather than KMS: tens of millions of pages would pay a
 * KMS request for every GET and PUT.
 */
export class Storage extends Construct {
  public readonly stagingBucket: s3.IBucket;
  public readonly workBucket: s3.Bucket;
  /** Server access logs of both buckets and the load balancer's access logs. */
  public readonly logsBucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: StorageProps) {
    super(scope, id);
    this.logsBucket = new s3.Bucket(this, "Logs", {
      ...secure,
      // Log delivery (S3 server access logs, ALB access logs) requires SSE-S3, set above.
      lifecycleRules: [{ expiration: Duration.days(90), abortIncompleteMultipartUploadAfter: Duration.days(1) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // The work and logs buckets get CloudFormation names `<stack>-<path><hash>-<suffix>`: a staging
    // bucket named like one of them is this stack's own (from an earlier deploy's outputs). The
    // pipeline would list its own files as sources. (The services refuse STAGING_BUCKET = WORK_BUCKET too.)
    const own = ["work", "logs"].map((b) => `${Stack.of(this).stackName.toLowerCase()}-${id.toLowerCase()}${b}`);
    if (props.stagingBucketName && own.some((p) => props.stagingBucketName!.startsWith(p))) {
      throw new ConfigError(
        `context "stagingBucketName" ${props.stagingBucketName} is this stack's own work or logs bucket; ` +
          "name the bucket that holds your PDFs (the work bucket is never a source)",
      );
    }
    this.stagingBucket = props.stagingBucketName
      ? s3.Bucket.fromBucketName(this, "Staging", props.stagingBucketName)
      : new s3.Bucket(this, "Staging", {
          ...secure,
          versioned: true,
          serverAccessLogsBucket: this.logsBucket,
          serverAccessLogsPrefix: "s3/staging/",
          lifecycleRules: [
            { abortIncompleteMultipartUploadAfter: Duration.days(1) },
            { noncurrentVersionExpiration: Duration.days(30) },
          ],
          removalPolicy: RemovalPolicy.RETAIN,
        });

    const days = Duration.days(props.intermediateRetentionDays);
    this.workBucket = new s3.Bucket(this, "Work", {
      ...secure,
      serverAccessLogsBucket: this.logsBucket,
      serverAccessLogsPrefix: "s3/work/",
      lifecycleRules: [
        { id: "abort-incomplete-uploads", abortIncompleteMultipartUploadAfter: Duration.days(1) },
        { id: "expire-chunks", tagFilters: { [INTERMEDIATE_TAG]: "chunk" }, expiration: days },
        { id: "expire-pages", tagFilters: { [INTERMEDIATE_TAG]: "page" }, expiration: days },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    if (props.imageReaderRoleArn) {
      this.workBucket.addToResourcePolicy(
        new iam.PolicyStatement({
          principals: [new iam.ArnPrincipal(props.imageReaderRoleArn)],
          actions: ["s3:GetObject"],
          resources: [this.workBucket.arnForObjects(workKeys.images)],
        }),
      );
    }
  }
}
