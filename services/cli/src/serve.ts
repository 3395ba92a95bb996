import type { Logger } from "@docpipe/queue";
import { withLocalSession } from "./local-session.js";
import { printable } from "./printable.js";

export interface ServeOptions {
  logger: Logger;
  /** The local stack: its data stays under .local/<name>, and `docpipe keys --stack <name>` finds it. */
  stackName: string;
  /** The API's port on 127.0.0.1; 0 picks a free one. */
  port: number;
  out: NodeJS.WriteStream;
}

/**
 * `docpipe serve`: the local stack, every service and the ingestion API on 127.0.0.1 until
 * SIGINT or SIGTERM. The local server a person, a client library or a test uses, with keys
 * from `docpipe keys create --stack <name>`. Stops the services first, then the stack.
 */
export async function serve(opts: ServeOptions): Promise<void> {
  const { out } = opts;
  await withLocalSession({ stackName: opts.stackName, logger: opts.logger, out, apiPort: opts.port }, async ({ stack, pipeline, interrupted }) => {
    out.write(
      [
        `docpipe API listening on ${pipeline.apiUrl}`,
        `  stack "${printable(stack.name)}": data under ${printable(stack.dataDir)}`,
        `  S3 ${stack.s3Endpoint} (path-style, key ${stack.credentials.accessKeyId} / secret ${stack.credentials.secretAccessKey}):` +
          ` put PDFs in bucket ${stack.stagingBucket}; ${stack.workBucket} is the pipeline's own`,
        `  a key:  pnpm docpipe keys create --stack ${printable(stack.name)} --name me --owner me --plan local --bucket ${stack.stagingBucket}`,
        `  then:   DOCPIPE_API_URL=${pipeline.apiUrl} DOCPIPE_API_KEY=<key> pnpm docpipe submit --bucket ${stack.stagingBucket} --prefix <prefix> --watch`,
        `Ctrl-C (or SIGTERM) stops it.`,
        "",
      ].join("\n"),
    );
    if (!interrupted.aborted) await new Promise((resolve) => interrupted.addEventListener("abort", resolve, { once: true }));
    out.write("stopping…\n");
  });
  out.write("stopped\n");
}
