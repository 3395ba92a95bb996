import { GetSecretValueCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { coerceError, type Logger } from "@docpipe/queue";
import { ModelUnavailableError } from "./errors.js";

/** Where the model API key comes from: read once, kept, and read again when the endpoint refuses it. */
export interface ApiKeySource {
  readonly description: string;
  /** The key to send now. */
  current(): Promise<string>;
  /**
   * The endpoint refused `rejected` (403). Resolves true when another key is current now (this
   * call read a new one, or a concurrent call already had), false when the key is unchanged.
   */
  renew(rejected: string): Promise<boolean>;
}

/** A key that never changes (local runs, tests): a 403 is final. */
export function fixedApiKey(value: string): ApiKeySource {
  return { description: "a fixed key", current: () => Promise.resolve(value), renew: () => Promise.resolve(false) };
}

export interface SecretApiKeyOptions {
  /** Its credentials are the task role's on AWS: the only role that may read the secret. */
  client: SecretsManagerClient;
  /** The secret's ARN or name; its SecretString is the key. */
  secretId: string;
  logger?: Logger;
}

/**
 * The key in Secrets Manager, read with the caller's own credentials (on ECS the inference
 * client's task role) rather than injected by ECS at task start: the key is cached, and read
 * again when the endpoint answers 403, so a rotated key is picked up without a restart.
 * Concurrent reads are one GetSecretValue.
 */
export class SecretApiKey implements ApiKeySource {
  readonly description: string;
  private value: string | undefined;
  private reading: Promise<string> | undefined;
  private readonly logger: Logger | undefined;

  constructor(private readonly opts: SecretApiKeyOptions) {
    this.description = `secret ${opts.secretId}`;
    this.logger = opts.logger?.child({ component: "model-api-key" });
  }

  current(): Promise<string> {
    return this.value !== undefined ? Promise.resolve(this.value) : this.read();
  }

  async renew(rejected: string): Promise<boolean> {
    if (this.value !== undefined && this.value !== rejected) return true;
    return (await this.read()) !== rejected;
  }

  private read(): Promise<string> {
    this.reading ??= this.fetch().finally(() => (this.reading = undefined));
    return this.reading;
  }

  private async fetch(): Promise<string> {
    const { secretId } = this.opts;
    let secret: string | undefined;
    try {
      secret = (await this.opts.client.send(new GetSecretValueCommand({ SecretId: secretId }))).SecretString;
    } catch (e) {
      const err = coerceError(e);
      // Retryable like an endpoint that is down: a throttled or unreachable Secrets Manager
      // recovers, and a missing grant is an operator's fix, not a reason to fail pages.
      throw new ModelUnavailableError("model_key_unreadable", `cannot read the model API key from ${this.description}: ${err.name}: ${err.message}`, {
        cause: err,
      });
    }
    const key = secret?.trim();
    if (!key) {
      throw new ModelUnavailableError("model_key_unreadable", `${this.description} has no SecretString: store the model API key as the secret's string`);
    }
    if (this.value !== undefined && key !== this.value) this.logger?.info({ secret: secretId }, "model API key re-read: a new key is in use");
    this.value = key;
    return key;
  }
}
