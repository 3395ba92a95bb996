import pg from "pg";

// Postgres catalog columns of type `name` (OID 19) and `"char"` (OID 18) are not mapped by
// Prisma's pg adapter, so `migrate dev/deploy/status` through it fail while introspecting
// (prisma/orm#27403). Both are plain strings: report them as `text` (OID 25).
const CATALOG_STRING_OIDS = new Set([18, 19]);
const TEXT_OID = 25;

function asText(result: unknown): unknown {
  const fields = (result as { fields?: { dataTypeID: number }[] } | undefined)?.fields;
  for (const field of fields ?? []) {
    if (CATALOG_STRING_OIDS.has(field.dataTypeID)) field.dataTypeID = TEXT_OID;
  }
  return result;
}

/** A pg Client that reports catalog string columns as text; pass it as `Client` in pool config. */
export class CatalogAsTextClient extends pg.Client {
  // pg's query has many overloads; the adapter only uses the promise form.
  override query(...args: unknown[]): never {
    const out = (super.query as (...a: unknown[]) => unknown)(...args);
    if (out instanceof Promise) return out.then(asText) as never;
    return out as never;
  }
}
