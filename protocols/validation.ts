// One way to report validation failures everywhere (config files, scenarios, profiles, MQTT payloads, HTTP
// bodies): every issue with its path, so a person can find and fix each one in a single pass.

export interface IssueLike {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

export interface PathIssue {
  readonly path: string;
  readonly message: string;
}

export function pathOf(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(root)";
  return path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("").replace(/^\./, "");
}

export function formatIssues(issues: readonly IssueLike[]): PathIssue[] {
  return issues.map((i) => ({ path: pathOf(i.path), message: i.message }));
}

export function issuesToText(issues: readonly IssueLike[]): string {
  return formatIssues(issues)
    .map((i) => `  ${i.path}: ${i.message}`)
    .join("\n");
}
