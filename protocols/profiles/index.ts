// The built-in device profiles, by id.
import { agriFireNode } from "./agri-fire-node.js";
import { calectroUg3 } from "./calectro-ug3.js";
import { chintDdsu666 } from "./chint-ddsu666.js";
import { chintDtsu666, chintDtsu666Energy4000 } from "./chint-dtsu666.js";
import { eastronSdm120 } from "./eastron-sdm120.js";
import { eastronSdm630 } from "./eastron-sdm630.js";
import { hikingDds238 } from "./hiking-dds238.js";
import { relayModule8ch } from "./relay-module-8ch.js";
import type { DeviceProfile } from "./schema.js";

export const BUILT_IN_PROFILES: readonly DeviceProfile[] = [
  eastronSdm120,
  eastronSdm630,
  chintDtsu666,
  chintDtsu666Energy4000,
  chintDdsu666,
  hikingDds238,
  relayModule8ch,
  calectroUg3,
  agriFireNode,
];

const byId = new Map(BUILT_IN_PROFILES.map((p) => [p.id, p]));

export function findProfile(id: string): DeviceProfile | undefined {
  return byId.get(id);
}

export function profileIds(): string[] {
  return [...byId.keys()];
}
