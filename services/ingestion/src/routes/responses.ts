import { ErrorResponse } from "@docpipe/api-contract";
import type { z } from "zod";

/** An answer documented with its description, its body validated and serialised by `schema`. */
export const answer = <S extends z.ZodType>(description: string, schema: S) => ({ description, content: { "application/json": { schema } } });

/** Error answers, each the shared Error schema with what its codes mean. */
export function errors<K extends number>(described: Record<K, string>): Record<K, ReturnType<typeof answer<typeof ErrorResponse>>> {
  return Object.fromEntries(Object.entries(described).map(([status, d]) => [status, answer(d as string, ErrorResponse)])) as Record<
    K,
    ReturnType<typeof answer<typeof ErrorResponse>>
  >;
}

/** What any route that needs an API key may answer. */
export const keyErrors = {
  401: "`api_key_missing` (no x-api-key or Authorization: Bearer header) or `api_key_unknown`",
  403: "`api_key_disabled`, or `api_key_expired` (a rotated secret past its grace period)",
  429: "`rate_limited`: over the plan's rate; Retry-After says when to try again",
} as const;

/** The 400 of a route with a path id, and its 404. */
export const idErrors = (what: "batch" | "document") =>
  ({
    400: "`validation_error`: the id is not a UUID (details name the field)",
    404: `\`${what}_not_found\`: no such ${what}, or one another owner's keys submitted`,
  }) as const;

/** A Date as the API writes timestamps. */
export const iso = (d: Date): string => d.toISOString();
export const isoOrNull = (d: Date | null): string | null => (d === null ? null : d.toISOString());
