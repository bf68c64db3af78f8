// The "village" preset: a small grain-growing village with pump houses and a forested ridge, modelled on the seed
// stories (Hongmiao village's metered pumps, the Mogan ridge's fire watch). Unit map (README §Simulator):
//   bus pump-houses  tcp 127.0.0.1:15020  1 SDM630 7.5 kW grain pump (contactor ch1), 2 DTSU666 5.5 kW grain pump
//                                         (contactor ch2), 3 DDS238 2.2 kW tea-garden pump (own relay),
//                                         4 SDM120 seedling nursery, 5 DDSU666 1.5 kW grain pump (contactor ch3),
//                                         9 8-channel relay board
//   bus forest-ridge tcp 127.0.0.1:15021  1-4 forest-fire nodes, 5 Calectro smoke detector in pump house 1
//   bus pump-house-rs485 (only with an RTU path) 1 DDS238 grain pump, 2 forest-fire node

import type { ScenarioInput } from "../scenario.js";

export interface VillageOptions {
  readonly host?: string;
  /** First TCP port; the forest bus takes the next one. 0 = pick free ports. */
  readonly basePort?: number;
  /** Path of an RTU pty to add a serial bus (needs socat). */
  readonly rtuPath?: string | undefined;
  readonly speed?: number;
  readonly start?: string;
}

const RIDGE = { lat: 30.5512, lon: 119.8735 }; // WGS-84, a wooded ridge in Deqing county (illustrative)

export function villagePreset(opts: VillageOptions = {}): ScenarioInput {
  const host = opts.host ?? "127.0.0.1";
  const base = opts.basePort ?? 15020;
  const port = (offset: number): number => (base === 0 ? 0 : base + offset);
  const morning = { from: "06:00", to: "09:00" };
  const evening = { from: "16:00", to: "19:00" };
  const scenario: ScenarioInput = {
    name: "village",
    description: "Five metered supplies (three grain pumps, a tea-garden pump, a nursery), a relay board, five fire sensors.",
    seed: 20260601,
    clock: { start: opts.start ?? "2026-06-01T05:55:00+08:00", speed: opts.speed ?? 1, tickMs: 100 },
    buses: [
      { id: "pump-houses", tcp: { host, port: port(0) } },
      { id: "forest-ridge", tcp: { host, port: port(1) } },
    ],
    devices: [
      {
        id: "pump-chen-grain", bus: "pump-houses", unit: 1, profile: "eastron-sdm630-v2",
        description: "Chen household, 7.5 kW three-phase pump, paddy field",
        meter: { loads: [{ kind: "pump", ratedW: 7500, schedule: [morning, evening] }], initialImportWh: 1_234_567, contactor: { device: "relay-board-1", channel: 1 } },
      },
      {
        id: "pump-wang-grain", bus: "pump-houses", unit: 2, profile: "chint-dtsu666",
        description: "Wang household, 5.5 kW three-phase pump, wheat",
        meter: { loads: [{ kind: "pump", ratedW: 5500, schedule: [{ from: "05:30", to: "08:30" }] }], initialImportWh: 402_150, contactor: { device: "relay-board-1", channel: 2 } },
      },
      {
        id: "pump-li-tea", bus: "pump-houses", unit: 3, profile: "hiking-dds238-2-zn",
        description: "Li household, 2.2 kW pump, tea garden (not grain)",
        meter: { loads: [{ kind: "pump", ratedW: 2200, schedule: [{ from: "07:00", to: "10:00" }] }], initialImportWh: 88_420 },
      },
      {
        id: "nursery-zhao", bus: "pump-houses", unit: 4, profile: "eastron-sdm120",
        description: "Zhao household, seedling nursery (heating mats, lights)",
        meter: { loads: [{ kind: "household", baseW: 120, peakW: 1500 }], initialImportWh: 15_300 },
      },
      {
        id: "pump-sun-grain", bus: "pump-houses", unit: 5, profile: "chint-ddsu666",
        description: "Sun household, 1.5 kW single-phase pump, rice",
        meter: { loads: [{ kind: "pump", ratedW: 1500, schedule: [{ from: "06:30", to: "08:00" }] }], initialImportWh: 51_000, contactor: { device: "relay-board-1", channel: 3 } },
      },
      { id: "relay-board-1", bus: "pump-houses", unit: 9, profile: "relay-module-8ch", description: "Contactor board in pump house 1", relayModule: { initiallyOn: true } },
      ...[1, 2, 3, 4].map((n) => ({
        id: `fire-ridge-${n}`, bus: "forest-ridge", unit: n, profile: "agri-fire-node",
        description: `Forest-fire node ${n} on the ridge`,
        location: { lat: RIDGE.lat + n * 0.002, lon: RIDGE.lon + n * 0.0015 },
        fire: { ambientC: 19, dailySwingC: 7, humidityPct: 65 },
      })),
      { id: "smoke-pumphouse", bus: "forest-ridge", unit: 5, profile: "calectro-ug-3-o-mb-r", description: "Duct smoke detector in pump house 1", fire: {} },
    ],
  };
  if (opts.rtuPath) {
    scenario.buses.push({ id: "pump-house-rs485", rtu: { path: opts.rtuPath, baud: 9600, parity: "none", stopBits: 1 } });
    scenario.devices.push(
      {
        id: "pump-zhou-grain", bus: "pump-house-rs485", unit: 1, profile: "hiking-dds238-2-zn",
        description: "Zhou household, 3 kW pump on the RS-485 line",
        meter: { loads: [{ kind: "pump", ratedW: 3000, schedule: [morning] }], initialImportWh: 120_000 },
      },
      { id: "fire-rtu-1", bus: "pump-house-rs485", unit: 2, profile: "agri-fire-node", description: "Fire node wired to the pump-house line", fire: {} },
    );
  }
  return scenario;
}
