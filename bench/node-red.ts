// Optional peer: Node-RED with node-red-contrib-modbus polling the same simulated meters, the integration many
// village electricians already know. Run only when both packages are installed locally: the project does not
// depend on them, and a benchmark must not install anything.

import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

function installed(name: string): boolean {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}

export function nodeRedBench(): void {
  const missing = ["node-red", "node-red-contrib-modbus"].filter((name) => !installed(name));
  if (missing.length > 0) {
    process.stderr.write(`node-red: skipped, ${missing.join(" and ")} ${missing.length > 1 ? "are" : "is"} not installed (not a dependency of this project)\n`);
    return;
  }
  process.stderr.write("node-red: installed, but no comparison is written yet; skipped\n");
}
