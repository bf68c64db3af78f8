// Load the gateway configuration from a file (YAML or JSON) or an object (a config.update command): validate it
// with every error and its path, then freeze it so no code can change a live configuration by accident.

import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { AgriError } from "../../protocols/errors.js";
import { BUILT_IN_PROFILES } from "../../protocols/profiles/index.js";
import type { DeviceProfile } from "../../protocols/profiles/schema.js";
import { formatIssues, type PathIssue } from "../../protocols/validation.js";
import { edgeConfigSchemaWith, type EdgeConfig } from "./schema.js";

export class ConfigError extends AgriError {
  constructor(
    message: string,
    readonly issues: readonly PathIssue[],
  ) {
    super("EDGE_CONFIG_INVALID", false, `${message}\n${issues.map((i) => `  ${i.path}: ${i.message}`).join("\n")}`);
  }
}

export function defaultProfiles(): Map<string, DeviceProfile> {
  return new Map(BUILT_IN_PROFILES.map((p) => [p.id, p]));
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}

export function parseEdgeConfig(input: unknown, profiles: ReadonlyMap<string, DeviceProfile> = defaultProfiles()): EdgeConfig {
  const result = edgeConfigSchemaWith(profiles).safeParse(input);
  if (!result.success) throw new ConfigError("configuration is invalid:", formatIssues(result.error.issues));
  return deepFreeze(result.data);
}

export function loadEdgeConfigFile(path: string, profiles?: ReadonlyMap<string, DeviceProfile>): EdgeConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read ${path}:`, [{ path: "(file)", message: (err as Error).message }]);
  }
  let data: unknown;
  try {
    data = extname(path) === ".json" ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${path} is not valid ${extname(path) === ".json" ? "JSON" : "YAML"}:`, [{ path: "(file)", message: (err as Error).message }]);
  }
  return parseEdgeConfig(data, profiles);
}
