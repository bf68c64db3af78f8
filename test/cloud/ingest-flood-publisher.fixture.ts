// A gateway flooding the cloud broker, in a child process so that what it buffers is not counted in the heap of the
// process under test (the broker and the ingest). It publishes `count` valid billing messages at QoS 1 all at once,
// with no window of its own (mqtt.js has none at MQTT 3.1.1): only the broker's PUBACKs can slow it. It reports its
// PUBACK count over IPC every `reportEvery` acknowledgements. Forked by ingest-backpressure.test.ts.

import net from "node:net";
import mqtt from "mqtt";

export interface FloodSpec {
  readonly port: number;
  readonly gatewayId: string;
  readonly password: string;
  readonly count: number;
  readonly readingsPerMessage: number;
  readonly reportEvery: number;
}

export type FromFlood = { readonly type: "acked"; readonly acked: number } | { readonly type: "done"; readonly acked: number } | { readonly type: "error"; readonly message: string };

/** Billing message `seq` of the flood: readingsPerMessage readings of one meter, registers rising. */
export function floodMessage(gatewayId: string, seq: number, readingsPerMessage: number): string {
  const readings = Array.from({ length: readingsPerMessage }, (_, j) => {
    const registerSeq = (seq - 1) * readingsPerMessage + j + 1;
    const at = new Date(Date.UTC(2026, 5, 1) + registerSeq * 60_000).toISOString();
    return { meterId: "flood-meter", pointId: "importEnergy", role: "import_energy", registerSeq, at, raw: { words: [Math.floor(registerSeq / 65536), registerSeq % 65536], value: registerSeq }, energyWh: registerSeq * 100, conversion: { exact: true, droppedWh: 0 } };
  });
  return JSON.stringify({ v: 1, gatewayId, seq, sentAt: new Date(Date.UTC(2026, 5, 1) + seq * 1000).toISOString(), readings });
}

async function flood(spec: FloodSpec): Promise<void> {
  const client = new mqtt.MqttClient(
    () => {
      const socket = net.connect({ host: "127.0.0.1", port: spec.port });
      socket.setNoDelay(true);
      return socket;
    },
    { clientId: spec.gatewayId, username: spec.gatewayId, password: spec.password, protocolVersion: 4, clean: true, reconnectPeriod: 0 },
  );
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  const topic = `agri/v1/gw/${spec.gatewayId}/up/billing`;
  let acked = 0;
  await Promise.all(
    Array.from({ length: spec.count }, async (_, i) => {
      await client.publishAsync(topic, floodMessage(spec.gatewayId, i + 1, spec.readingsPerMessage), { qos: 1 });
      acked++;
      if (acked % spec.reportEvery === 0) process.send?.({ type: "acked", acked } satisfies FromFlood);
    }),
  );
  process.send?.({ type: "done", acked } satisfies FromFlood);
  await client.endAsync();
}

if (process.send !== undefined) {
  process.once("message", (spec: FloodSpec) => {
    flood(spec).catch((error: unknown) => process.send?.({ type: "error", message: String(error) } satisfies FromFlood));
  });
}
