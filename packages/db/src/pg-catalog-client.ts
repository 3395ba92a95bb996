import pg from "pg";

// Postgres catalog columns of type `name` (OID 19) and `"char"` (OID 18) are not mapped by
// Prisma's pg adapter, so `migrate dev/deploy/status` through it fail while introspecting
// ("Column type 'name' could not be deserialized", prisma/orm#27403). Both are plain
// strings: report them as `text` (OID 25).
const CATALOG_STRING_OIDS = new Set([18, 19]);
const TEXT_OID = 25;

type Callback = (err: unknown, result: unknown) => void;

function asText<T>(result: T): T {
  const fields = (result as { fields?: { dataTypeID: number }[] } | undefined)?.fields;
  for (const field of fields ?? []) {
    if (CATALOG_STRING_OIDS.has(field.dataTypeID)) field.dataTypeID = TEXT_OID;
  }
  return result;
}

/** A pg Client that reports catalog string columns as text; pass it as `Client` in pool config. */
export class CatalogAsTextClient extends pg.Client {
  // pg's query has many overloads. pg.Pool (which the adapter uses) calls the callback form,
  // direct callers the promise form: both must be rewritten.
  override query(...args: unknown[]): never {
    const query = super.query as (...a: unknown[]) => unknown;
    const last = args.at(-1);
    if (typeof last === "function") {
      const callback = last as Callback;
      args[args.length - 1] = (err: unknown, result: unknown) => callback(err, err ? result : asText(result));
      return query.apply(this, args) as never;
    }
    const out = query.apply(this, args);
    if (out instanceof Promise) return out.then(asText) as never;
    return out as never;
  }
}
