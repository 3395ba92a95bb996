import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  ResourceNotFoundException,
  SecretsManagerClient,
  SecretsManagerServiceException,
} from "@aws-sdk/client-secrets-manager";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSecretsManager, type SecretsManagerServer } from "./secrets-manager.js";

const credentials = { accessKeyId: "LOCALKEY", secretAccessKey: "local-secret" };
let server: SecretsManagerServer;
let client: SecretsManagerClient;
beforeAll(async () => {
  server = await startSecretsManager({ accessKeyId: credentials.accessKeyId, region: "eu-west-1" });
  client = new SecretsManagerClient({ region: "eu-west-1", endpoint: server.endpoint, credentials, maxAttempts: 1 });
});
afterAll(async () => {
  client?.destroy();
  await server?.stop();
});

describe("the Secrets Manager stand-in, through the AWS SDK", () => {
  it("keeps a secret by name and ARN, and a rotation makes the new value current and the old one previous", async () => {
    const created = await client.send(new CreateSecretCommand({ Name: "docpipe/model-key", SecretString: "first", Description: "the model's key" }));
    expect(created.ARN).toMatch(/^arn:aws:secretsmanager:eu-west-1:\d{12}:secret:docpipe\/model-key-[0-9a-f]{6}$/);
    const byName = await client.send(new GetSecretValueCommand({ SecretId: "docpipe/model-key" }));
    expect(byName).toMatchObject({ ARN: created.ARN, Name: "docpipe/model-key", SecretString: "first", VersionId: created.VersionId, VersionStages: ["AWSCURRENT"] });
    expect(byName.CreatedDate).toBeInstanceOf(Date);

    const rotated = await client.send(new PutSecretValueCommand({ SecretId: created.ARN, SecretString: "second" }));
    expect(rotated.VersionId).not.toBe(created.VersionId);
    expect((await client.send(new GetSecretValueCommand({ SecretId: created.ARN }))).SecretString).toBe("second");
    const previous = await client.send(new GetSecretValueCommand({ SecretId: created.ARN, VersionStage: "AWSPREVIOUS" }));
    expect(previous).toMatchObject({ SecretString: "first", VersionId: created.VersionId });
    const described = await client.send(new DescribeSecretCommand({ SecretId: "docpipe/model-key" }));
    expect(described.VersionIdsToStages).toEqual({ [created.VersionId!]: ["AWSPREVIOUS"], [rotated.VersionId!]: ["AWSCURRENT"] });
    expect(server.reads("docpipe/model-key")).toBe(3);
  });

  it("answers the service's own errors, which the SDK raises as its exception classes", async () => {
    await expect(client.send(new GetSecretValueCommand({ SecretId: "no/such/secret" }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    await client.send(new CreateSecretCommand({ Name: "twice", SecretString: "x" }));
    await expect(client.send(new CreateSecretCommand({ Name: "twice", SecretString: "y" }))).rejects.toBeInstanceOf(ResourceExistsException);
    const stranger = new SecretsManagerClient({ region: "eu-west-1", endpoint: server.endpoint, credentials: { ...credentials, accessKeyId: "OTHER" }, maxAttempts: 1 });
    try {
      const denied = await stranger.send(new GetSecretValueCommand({ SecretId: "twice" })).catch((e: unknown) => e);
      expect(denied).toBeInstanceOf(SecretsManagerServiceException);
      expect((denied as Error).name).toBe("UnrecognizedClientException");
    } finally {
      stranger.destroy();
    }
  });
});
