// protocols/README.md is the reference a third party implements against; this test keeps it equal to what the code
// would generate, so the tables cannot drift from the profiles, topics and schemas the programs actually enforce.

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { MESSAGE_NAMES } from "../mqtt/messages.js";
import { TOPIC_NAMES, TOPICS } from "../mqtt/topics.js";
import { BUILT_IN_PROFILES } from "../profiles/index.js";
import { GENERATED_END, GENERATED_START, README_PATH, renderGenerated, renderReadme } from "./generate-readme.js";

const readme = readFileSync(README_PATH, "utf8");
const generated = readme.slice(readme.indexOf(GENERATED_START), readme.indexOf(GENERATED_END));

describe("protocols/README.md", () => {
  it("equals what the generator renders from the current code (run `npm run docs` after changing protocols/)", () => {
    expect(renderReadme(readme)).toBe(readme);
  });

  it("keeps the hand-written prose above one generated block", () => {
    expect(readme.split(GENERATED_START)).toHaveLength(2);
    expect(readme.split(GENERATED_END)).toHaveLength(2);
    const prose = readme.slice(0, readme.indexOf(GENERATED_START));
    for (const topic of ["Versioning", "last will", "never retained", "expiresAt", "MBAP", "3.5 character", "0x101E", "stop bit", "agri-fire-node"]) {
      expect(prose).toContain(topic);
    }
  });

  it("names every built-in profile in the generated tables", () => {
    for (const p of BUILT_IN_PROFILES) expect(generated).toContain(`\`${p.id}\``);
  });

  it("names every topic pattern", () => {
    for (const name of TOPIC_NAMES) expect(generated).toContain(`\`${TOPICS[name].pattern}\``);
  });

  it("names every message schema", () => {
    for (const name of MESSAGE_NAMES) expect(generated).toContain(`#### \`${name}\``);
  });
});

describe("renderReadme", () => {
  it("is deterministic and idempotent", () => {
    expect(renderGenerated()).toBe(renderGenerated());
    const once = renderReadme("# title\n\nprose\n");
    expect(renderReadme(once)).toBe(once);
  });

  it("replaces only what lies between the markers", () => {
    const out = renderReadme(`before\n${GENERATED_START}\nstale table\n${GENERATED_END}\nafter\n`);
    expect(out.startsWith(`before\n${GENERATED_START}\n`)).toBe(true);
    expect(out.endsWith(`${GENERATED_END}\nafter\n`)).toBe(true);
    expect(out).not.toContain("stale table");
  });

  it("appends a generated block to a file that has none", () => {
    const out = renderReadme("# protocols\n");
    expect(out.startsWith("# protocols\n\n")).toBe(true);
    expect(out.trimEnd().endsWith(GENERATED_END)).toBe(true);
  });

  it("refuses a file with a broken or repeated marker pair instead of guessing", () => {
    expect(() => renderReadme(`${GENERATED_END}\n${GENERATED_START}\n`)).toThrow();
    expect(() => renderReadme(`${GENERATED_START}\nno end\n`)).toThrow();
    expect(() => renderReadme(`${GENERATED_START}\n${GENERATED_START}\n${GENERATED_END}\n`)).toThrow();
  });
});
