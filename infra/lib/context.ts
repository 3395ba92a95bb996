/** Reading CDK context values (`-c key=value` strings, or JSON from cdk.json) with errors that name the key. */

/** Thrown when a context value is missing or malformed; the message names the key and how to set it. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** `app.node.tryGetContext`, or a test's map. */
export type Lookup = (key: string) => unknown;

export const str = (get: Lookup, key: string): string | undefined => {
  const v = get(key);
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw new ConfigError(`context "${key}" must be a string, e.g. -c ${key}=value`);
  return v;
};

export const num = (get: Lookup, key: string, fallback: number, min: number, max: number): number => {
  const v = get(key);
  if (v === undefined || v === null || v === "") return fallback;
  const n = typeof v === "number" ? v : Number(v);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new ConfigError(`context "${key}" must be a number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return n;
};

/** An integer; `num` with the fraction refused. */
export const int = (get: Lookup, key: string, fallback: number, min: number, max: number): number => {
  const n = num(get, key, fallback, min, max);
  if (!Number.isInteger(n)) throw new ConfigError(`context "${key}" must be a whole number, got ${n}`);
  return n;
};

export const bool = (get: Lookup, key: string, fallback: boolean): boolean => {
  const v = get(key);
  if (v === undefined || v === null || v === "") return fallback;
  if (v === true || v === "true") return true;
  if (v === false || v === "false") return false;
  throw new ConfigError(`context "${key}" must be true or false, got ${JSON.stringify(v)}`);
};
