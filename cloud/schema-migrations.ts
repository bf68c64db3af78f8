// The one rule every versioned schema in the cloud follows (ledger on SQLite and PostgreSQL, registry, auth, audit,
// payments, alerts): from the rows of a store's migrations table and the migrations this code knows, either the
// migrations still to apply, in version order, or why the database must not be touched — it was migrated by newer
// code, or a version was applied under another name (another branch or program). Pure: each store reads its own
// table, turns a problem into its own error class and code, and runs the SQL in its own transaction.

export interface VersionedMigration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** A row of a migrations table; `name` absent where the table records versions only (alerts). */
export interface AppliedMigration {
  readonly version: number;
  readonly name?: string;
}

export type MigrationProblem =
  | { readonly kind: "too-new"; readonly fromVersion: number; readonly knownVersion: number }
  | { readonly kind: "mismatch"; readonly version: number; readonly appliedName: string; readonly knownName: string | undefined };

/** What planMigrations needs of a migration: alerts' migrations carry no name, like the rows of its table. */
type Planned = Pick<VersionedMigration, "version"> & { readonly name?: string };

export type MigrationPlan<M extends Planned> =
  | { readonly ok: true; readonly fromVersion: number; readonly toVersion: number; readonly pending: readonly M[] }
  | { readonly ok: false; readonly problem: MigrationProblem };

/** Newer-than-this-code is checked first, then every named row against this code's migration of that version. */
export function planMigrations<M extends Planned>(applied: readonly AppliedMigration[], migrations: readonly M[]): MigrationPlan<M> {
  const knownVersion = Math.max(0, ...migrations.map((m) => m.version));
  const fromVersion = applied.reduce((max, row) => Math.max(max, row.version), 0);
  if (fromVersion > knownVersion) return { ok: false, problem: { kind: "too-new", fromVersion, knownVersion } };
  for (const row of applied) {
    if (row.name === undefined) continue;
    const mine = migrations.find((m) => m.version === row.version);
    if (mine?.name !== row.name) return { ok: false, problem: { kind: "mismatch", version: row.version, appliedName: row.name, knownName: mine?.name } };
  }
  const pending = migrations.filter((m) => m.version > fromVersion).sort((a, b) => a.version - b.version);
  return { ok: true, fromVersion, toVersion: Math.max(fromVersion, knownVersion), pending };
}
