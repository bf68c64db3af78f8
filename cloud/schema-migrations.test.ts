import { describe, expect, it } from "vitest";
import { planMigrations } from "./schema-migrations.js";

const M1 = { version: 1, name: "first", sql: "CREATE TABLE a (x INTEGER)" };
const M2 = { version: 2, name: "second", sql: "CREATE TABLE b (x INTEGER)" };
const M3 = { version: 3, name: "third", sql: "CREATE TABLE c (x INTEGER)" };

describe("planMigrations", () => {
  it("plans every migration, in version order, for a fresh database whatever the list's order", () => {
    expect(planMigrations([], [M3, M1, M2])).toEqual({ ok: true, fromVersion: 0, toVersion: 3, pending: [M1, M2, M3] });
  });

  it("plans only the migrations newer than the highest applied version", () => {
    const applied = [{ version: 1, name: "first" }, { version: 2, name: "second" }];
    expect(planMigrations(applied, [M1, M2, M3])).toEqual({ ok: true, fromVersion: 2, toVersion: 3, pending: [M3] });
  });

  it("plans nothing for a database already at the latest version", () => {
    expect(planMigrations([{ version: 1, name: "first" }], [M1])).toEqual({ ok: true, fromVersion: 1, toVersion: 1, pending: [] });
  });

  it("refuses a database migrated by newer code before looking at names", () => {
    const applied = [{ version: 1, name: "another-branch" }, { version: 4, name: "future" }];
    expect(planMigrations(applied, [M1, M2, M3])).toEqual({ ok: false, problem: { kind: "too-new", fromVersion: 4, knownVersion: 3 } });
  });

  it("refuses a version applied under another name, naming both", () => {
    const applied = [{ version: 1, name: "first" }, { version: 2, name: "another-branch" }];
    expect(planMigrations(applied, [M1, M2, M3])).toEqual({
      ok: false,
      problem: { kind: "mismatch", version: 2, appliedName: "another-branch", knownName: "second" },
    });
  });

  it("refuses an applied version this code has no migration for, even below its latest", () => {
    const applied = [{ version: 2, name: "second" }];
    expect(planMigrations(applied, [M1, M3])).toEqual({ ok: false, problem: { kind: "mismatch", version: 2, appliedName: "second", knownName: undefined } });
  });

  it("checks only versions for a table that records no names", () => {
    const nameless = [{ version: 1, sql: "x" }, { version: 2, sql: "y" }];
    expect(planMigrations([{ version: 1 }], nameless)).toEqual({ ok: true, fromVersion: 1, toVersion: 2, pending: [nameless[1]] });
    expect(planMigrations([{ version: 3 }], nameless)).toEqual({ ok: false, problem: { kind: "too-new", fromVersion: 3, knownVersion: 2 } });
  });
});
