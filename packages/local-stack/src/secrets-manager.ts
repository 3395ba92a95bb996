import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { LocalStackError } from "./errors.js";

/**
 * What Secrets Manager does for the pipeline on AWS, for local runs and tests: secrets kept by
 * name and ARN, with versions (`AWSCURRENT` / `AWSPREVIOUS`), over the service's own JSON
 * protocol (awsJson1_1: `POST /` with `X-Amz-Target: secretsmanager.<Operation>`), so the real
 * `@aws-sdk/client-secrets-manager` talks to it unchanged. Calls must be signed with the
 * stand-in's access key (signatures are not verified). Secrets live in memory.
 *
 * Operations: CreateSecret, GetSecretValue, PutSecretValue (a rotation), DescribeSecret.
 */
export interface SecretsManagerOptions {
  /** The access key id requests must be signed with (the stack's credentials). */
  accessKeyId: string;
  /** @defaultValue "us-east-1" */
  region?: string;
  /** 0 picks a free port. @defaultValue 0 */
  port?: number;
}

export interface SecretsManagerServer {
  /** The endpoint (`AWS_ENDPOINT_URL_SECRETS_MANAGER`). */
  endpoint: string;
  /** GetSecretValue calls answered with a value so far for a secret (name or ARN): how often clients read it. */
  reads(secretId: string): number;
  stop(): Promise<void>;
}

interface Version {
  id: string;
  secretString: string;
  createdDate: number;
  stages: string[];
}

interface Secret {
  name: string;
  arn: string;
  description?: string;
  createdDate: number;
  versions: Version[];
  reads: number;
}

/** An error as the service reports it: status, `__type` and message, as the SDK parses them into exceptions. */
class ServiceError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const notFound = () => new ServiceError("ResourceNotFoundException", "Secrets Manager can't find the specified secret.");
const epochSeconds = () => Date.now() / 1000;

function requiredString(input: Record<string, unknown>, field: string): string {
  const v = input[field];
  if (typeof v !== "string" || v === "") throw new ServiceError("InvalidParameterException", `${field} is required and must be a non-empty string.`);
  return v;
}

/** The access key id of a SigV4 `Authorization` header, or undefined when there is none. */
function signedAccessKey(req: IncomingMessage): string | undefined {
  return /Credential=([^/,\s]+)\//.exec(req.headers.authorization ?? "")?.[1];
}

/** Starts a Secrets Manager stand-in on 127.0.0.1. */
export async function startSecretsManager(opts: SecretsManagerOptions): Promise<SecretsManagerServer> {
  const region = opts.region ?? "us-east-1";
  const byName = new Map<string, Secret>();
  const byArn = new Map<string, Secret>();

  const find = (id: unknown): Secret => {
    if (typeof id !== "string" || id === "") throw new ServiceError("InvalidParameterException", "SecretId is required.");
    const secret = byArn.get(id) ?? byName.get(id);
    if (!secret) throw notFound();
    return secret;
  };
  const current = (s: Secret): Version => s.versions.find((v) => v.stages.includes("AWSCURRENT"))!;
  const addVersion = (s: Secret, secretString: string, token: unknown): Version => {
    const id = typeof token === "string" && token !== "" ? token : randomUUID();
    const same = s.versions.find((v) => v.id === id);
    if (same) {
      // ClientRequestToken makes a retried call idempotent; reusing it for another value is an error.
      if (same.secretString !== secretString) throw new ServiceError("ResourceExistsException", `A version with ID ${id} already exists with another value.`);
      return same;
    }
    for (const v of s.versions) v.stages = v.stages.includes("AWSCURRENT") ? ["AWSPREVIOUS"] : v.stages.filter((st) => st !== "AWSPREVIOUS");
    const version = { id, secretString, createdDate: epochSeconds(), stages: ["AWSCURRENT"] };
    s.versions = [...s.versions.filter((v) => v.stages.length > 0), version];
    return version;
  };

  const operations: Record<string, (input: Record<string, unknown>) => unknown> = {
    CreateSecret(input) {
      const name = requiredString(input, "Name");
      const secretString = requiredString(input, "SecretString");
      if (byName.has(name)) throw new ServiceError("ResourceExistsException", `The operation failed because the secret ${name} already exists.`);
      // As AWS does: the ARN ends in a dash and six random characters, so a re-created secret has another ARN.
      const arn = `arn:aws:secretsmanager:${region}:000000000000:secret:${name}-${randomBytes(3).toString("hex")}`;
      const secret: Secret = {
        name,
        arn,
        ...(typeof input.Description === "string" && { description: input.Description }),
        createdDate: epochSeconds(),
        versions: [],
        reads: 0,
      };
      const version = addVersion(secret, secretString, input.ClientRequestToken);
      byName.set(name, secret);
      byArn.set(arn, secret);
      return { ARN: arn, Name: name, VersionId: version.id };
    },
    PutSecretValue(input) {
      const secret = find(input.SecretId);
      const version = addVersion(secret, requiredString(input, "SecretString"), input.ClientRequestToken);
      return { ARN: secret.arn, Name: secret.name, VersionId: version.id, VersionStages: version.stages };
    },
    GetSecretValue(input) {
      const secret = find(input.SecretId);
      const stage = typeof input.VersionStage === "string" ? input.VersionStage : undefined;
      const id = typeof input.VersionId === "string" ? input.VersionId : undefined;
      const version = id || stage ? secret.versions.find((v) => (!id || v.id === id) && (!stage || v.stages.includes(stage))) : current(secret);
      if (!version) throw notFound();
      secret.reads += 1;
      return {
        ARN: secret.arn,
        Name: secret.name,
        VersionId: version.id,
        SecretString: version.secretString,
        VersionStages: version.stages,
        CreatedDate: version.createdDate,
      };
    },
    DescribeSecret(input) {
      const secret = find(input.SecretId);
      return {
        ARN: secret.arn,
        Name: secret.name,
        ...(secret.description !== undefined && { Description: secret.description }),
        CreatedDate: secret.createdDate,
        VersionIdsToStages: Object.fromEntries(secret.versions.map((v) => [v.id, v.stages])),
      };
    },
  };

  const reply = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      "content-type": "application/x-amz-json-1.1",
      "content-length": Buffer.byteLength(text),
      "x-amzn-requestid": randomUUID(),
      ...headers,
    });
    res.end(text);
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
    const target = String(req.headers["x-amz-target"] ?? "");
    const operation = target.startsWith("secretsmanager.") ? operations[target.slice("secretsmanager.".length)] : undefined;
    if (req.method !== "POST" || !operation) throw new ServiceError("UnknownOperationException", `unknown operation ${target || "(no X-Amz-Target)"}`);
    if (signedAccessKey(req) !== opts.accessKeyId) {
      throw new ServiceError("UnrecognizedClientException", "The security token included in the request is invalid.");
    }
    let input: unknown;
    try {
      input = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
    } catch {
      throw new ServiceError("SerializationException", "the request body is not JSON");
    }
    if (typeof input !== "object" || input === null) throw new ServiceError("SerializationException", "the request body is not a JSON object");
    reply(res, 200, operation(input as Record<string, unknown>));
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err = e instanceof ServiceError ? e : new ServiceError("InternalServiceError", String(e), 500);
      if (!res.headersSent) reply(res, err.status, { __type: err.type, message: err.message }, { "x-amzn-errortype": err.type });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) => reject(new LocalStackError(`cannot start the Secrets Manager stand-in on port ${opts.port ?? 0}`, { cause: e })));
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    reads: (secretId) => (byArn.get(secretId) ?? byName.get(secretId))?.reads ?? 0,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeAllConnections();
      }),
  };
}
