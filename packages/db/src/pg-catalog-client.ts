import pg from "pg";

// Postgres catalog columns of type `name` (OID 19) and `"char"` (OID 18) are not mapped by
// Prisma's pg adapter, so `migrate dev/deploy/status` through it fail while introspecting
// ("Column type 'name' could not be deserialized", prisma/orm#27403). Both are reported as
// `text` (OID 25) so the adapter accepts them. A `name` is a string to the schema engine, but
// a `"char"` (pg_constraint.contype, ...) must reach it as a Character column or it panics:
// those columns are remembered by result rows, for MigrationAdapterFactory to retype.
const NAME_OID = 19;
const CHAR_OID = 18;
const TEXT_OID = 25;

/** Indexes of the `"char"` columns of a result, keyed by its `rows` array. */
export const charColumns = new WeakMap<object, number[]>();

type Callback = (err: unknown, result: unknown) => void;

function asText<T>(result: T): T {
  const { fields, rows } = (result ?? {}) as { fields?: { dataTypeID: number }[]; rows?: object };
  const chars: number[] = [];
  fields?.forEach((field, i) => {
    if (field.dataTypeID === CHAR_OID) chars.push(i);
    if (field.dataTypeID === CHAR_OID || field.dataTypeID === NAME_OID) field.dataTypeID = TEXT_OID;
  });
  if (chars.length && rows) charColumns.set(rows, chars);
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
