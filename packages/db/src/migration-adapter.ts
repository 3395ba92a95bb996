import { randomUUID } from "node:crypto";
import { PrismaPg } from "@prisma/adapter-pg";
import type { PoolConfig } from "pg";
import { poolConfigFromUrl } from "./connection.js";
import { CatalogAsTextClient, charColumns } from "./pg-catalog-client.js";

type Adapter = Awaited<ReturnType<PrismaPg["connect"]>>;
type Queryable = Pick<Adapter, "queryRaw">;

/** `ColumnTypeEnum.Character` of @prisma/driver-adapter-utils. */
const CHARACTER_COLUMN = 6;

/** Reports the `"char"` columns that CatalogAsTextClient passed off as text as Character. */
function retypeCharColumns<T extends Queryable>(queryable: T): T {
  const queryRaw = queryable.queryRaw.bind(queryable);
  queryable.queryRaw = async (query) => {
    const result = await queryRaw(query);
    for (const i of charColumns.get(result.rows) ?? []) (result.columnTypes as number[])[i] = CHARACTER_COLUMN;
    return result;
  };
  return queryable;
}

/** The adapter's own members that {@link runScriptWhole} uses. */
interface AdapterInternals {
  client: { query(sql: string): Promise<unknown> };
  onError(error: unknown): never;
}

/**
 * Sends a migration script to Postgres as one multi-statement query, as Prisma's native engine
 * does. The adapter's own executeScript splits it at every `;`, including those inside function
 * bodies, string literals and comments, so a migration that defines a trigger function fails.
 */
function runScriptWhole(adapter: Adapter): void {
  const internals = adapter as unknown as AdapterInternals;
  adapter.executeScript = async (script) => {
    try {
      await internals.client.query(script);
    } catch (e) {
      internals.onError(e);
    }
  };
}

function withCatalogTypes(adapter: Adapter): Adapter {
  retypeCharColumns(adapter);
  runScriptWhole(adapter);
  const startTransaction = adapter.startTransaction.bind(adapter);
  adapter.startTransaction = async (isolationLevel) => retypeCharColumns(await startTransaction(isolationLevel));
  return adapter;
}

/**
 * The driver adapter the Prisma CLI uses for `migrate dev|deploy|status` and Studio
 * (prisma.config.ts). It fixes four problems of @prisma/adapter-pg 6.19 with the JavaScript
 * schema engine:
 * - a migration script is split at every `;` and sent a piece at a time, which breaks
 *   function bodies (triggers): {@link runScriptWhole} sends it whole;
 * - catalog columns of type `name`/`"char"` fail to deserialize (prisma/orm#27403):
 *   {@link CatalogAsTextClient} reports them as text, and `"char"` columns are then retyped
 *   as Character, which the schema engine expects;
 * - the shadow database config is `{ ...config, database }`, which a `connectionString`
 *   silently overrides (migrate dev then replays migrations on the real database):
 *   discrete fields from {@link poolConfigFromUrl};
 * - the shadow database is dropped while its own pool still holds a connection ("is being
 *   accessed by other users"), and the pool used to create it is never closed: the shadow
 *   pool is closed first, then the database is dropped through a pool that is closed too.
 */
export class MigrationAdapterFactory extends PrismaPg {
  readonly #config: PoolConfig;

  constructor(databaseUrl: string) {
    const config: PoolConfig = { ...poolConfigFromUrl(databaseUrl), Client: CatalogAsTextClient, max: 2, allowExitOnIdle: true };
    super(config);
    this.#config = config;
  }

  override async connect(): Promise<Adapter> {
    return withCatalogTypes(await super.connect());
  }

  override async connectToShadowDb(): Promise<Adapter> {
    const admin = await this.connect();
    const database = `prisma_migrate_shadow_db_${randomUUID()}`;
    try {
      await admin.executeScript(`CREATE DATABASE "${database}"`);
      const shadow = withCatalogTypes(await new PrismaPg({ ...this.#config, database }).connect());
      const disposeShadow = shadow.dispose.bind(shadow);
      shadow.dispose = async () => {
        try {
          await disposeShadow();
          await admin.executeScript(`DROP DATABASE IF EXISTS "${database}"`);
        } finally {
          await admin.dispose();
        }
      };
      return shadow;
    } catch (e) {
      await admin.dispose();
      throw e;
    }
  }
}
