// Fire alarm latency with a telemetry backlog: from a forest-fire node's smoke-alarm flag changing in its register
// to the cloud (an MQTT subscriber on the alarm topic, TCP_NODELAY) receiving the alarm.raised PUBLISH, while the
// gateway's outbox still holds most of a 100,000-message telemetry backlog that it is draining. The outbox is filled
// before the gateway starts (as after an outage); the gateway runs in a child process (edge-child.ts); the
// simulator, the broker and the subscriber share this process and this clock (performance.now()).
//
// The node is polled every 1000 ms, so a flag set at a random moment waits up to one interval for the next read;
// the goal is one interval + 50 ms, and the trials flip the flag at phases spread over the whole interval. The
// simulator stamps the first read of the flag register after the flip (and the poll's next read), and the broker
// stamps the alarm PUBLISH as it parses it, which splits the latency into waiting for the poll, the rest of the
// poll, the gateway's work up to the broker, and broker → cloud. The same trials against the same gateway with an
// empty outbox are the peer: the backlog's cost is the difference.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatTopic } from "../protocols/mqtt/topics.js";
import { startTestBroker } from "../test/harness/broker.js";
import { connectCloud } from "./cloud-subscriber.js";
import { startEdgeChild } from "./edge-child-process.js";
import type { ChildUsage } from "./edge-child.js";
import { fireEdgeConfig, fireField, flipPhases, outboxPath, POLL_MS, prefillOutbox, round, smokeFlag, summary, watchFireReads } from "./fire-field.js";
import { report } from "./report.js";

const GW = "gw-alarm-bench";
const BACKLOG = 100_000;
const TRIALS = 10;
const SETTLE_MS = 2000;

interface Trial {
  /** Flag set → alarm received by the cloud. */
  readonly latencyMs: number;
  /** Flag set → the simulator answers the first read of it. */
  readonly waitMs: number;
  /** That read → the simulator sees the poll's next read (the node's measurements, FC 04). */
  readonly restOfPollMs: number;
  /** The poll's last read → the broker parses the alarm PUBLISH. */
  readonly gatewayMs: number;
  readonly brokerToCloudMs: number;
  readonly backlog: number;
  /** The read before the flip → the first read after it: the poll interval as the gateway kept it. */
  readonly pollGapMs: number;
}

interface Phase {
  readonly trials: readonly Trial[];
  readonly loop: ChildUsage["loop"];
  readonly cpuPct: number;
  readonly drainPerS: number;
  readonly backlogStart: number;
  readonly backlogEnd: number;
}

async function runPhase(backlog: number): Promise<Phase> {
  const dir = mkdtempSync(join(tmpdir(), "agri-alarm-bench-"));
  const field = fireField("alarm-latency", 11);
  await field.start();
  const broker = await startTestBroker();
  const cloud = await connectCloud(broker.port, [formatTopic("alarm", { gatewayId: GW })]);
  let edge: Awaited<ReturnType<typeof startEdgeChild>> | undefined;
  try {
    const { flagReads, measurementReads, nextFlagRead } = watchFireReads(field);
    // When the broker has parsed the alarm PUBLISH from the gateway (its first hook, before it forwards it).
    const brokerAlarms: number[] = [];
    const alarmTopic = formatTopic("alarm", { gatewayId: GW });
    broker.aedes.authorizePublish = (_client, packet, callback) => {
      if (packet.topic === alarmTopic) brokerAlarms.push(performance.now());
      callback(null);
    };

    prefillOutbox(outboxPath(dir), GW, backlog);
    edge = await startEdgeChild(fireEdgeConfig({ gatewayId: GW, password: "bench", brokerUrl: broker.url, field, dir }), dir, { loopDelay: true });
    // Let the uplink connect and start draining, and the node be polled a few times.
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const before = await edge.outbox();
    const usage0 = await edge.usage();

    const setFlag = smokeFlag(field);
    const phases = flipPhases(TRIALS, 42);
    const trials: Trial[] = [];
    for (let t = 0; t < TRIALS; t++) {
      await nextFlagRead();
      const previousRead = flagReads.at(-1) ?? NaN;
      await new Promise((r) => setTimeout(r, phases[t]));
      const isEvent = (type: string) => (m: { json: Record<string, unknown> }): boolean => (m.json.event as { type?: string } | undefined)?.type === type;
      const raised = cloud.next(isEvent("alarm.raised"), 10_000, `alarm.raised (trial ${t + 1})`);
      const flippedAt = performance.now();
      setFlag(true);
      const message = await raised;
      const cleared = cloud.next(isEvent("alarm.cleared"), 10_000, `alarm.cleared (trial ${t + 1})`);
      setFlag(false);
      const queued = (await edge.outbox()).byTelemetry;
      await cleared;
      const pollAt = flagReads.find((x) => x >= flippedAt) ?? NaN;
      const pollEnd = measurementReads.find((x) => x >= pollAt) ?? NaN;
      const atBroker = brokerAlarms.find((x) => x >= flippedAt) ?? NaN;
      trials.push({ latencyMs: message.atMs - flippedAt, waitMs: pollAt - flippedAt, restOfPollMs: pollEnd - pollAt, gatewayMs: atBroker - pollEnd, brokerToCloudMs: message.atMs - atBroker, backlog: queued, pollGapMs: pollAt - previousRead });
    }
    const usage1 = await edge.usage();
    const after = await edge.outbox();
    const wallS = (usage1.atMs - usage0.atMs) / 1000;
    return {
      trials,
      loop: usage1.loop,
      cpuPct: ((usage1.cpuUserUs + usage1.cpuSystemUs - usage0.cpuUserUs - usage0.cpuSystemUs) / 1e4 / wallS),
      drainPerS: (before.byTelemetry - after.byTelemetry) / wallS,
      backlogStart: before.byTelemetry,
      backlogEnd: after.byTelemetry,
    };
  } finally {
    await edge?.stop();
    await cloud.close();
    await broker.close();
    await field.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const stat = (trials: readonly Trial[], f: (t: Trial) => number): ReturnType<typeof summary> => summary(trials.map(f), 1);

export async function alarmLatency(): Promise<void> {
  const quiet = await runPhase(0);
  const busy = await runPhase(BACKLOG);
  const total = stat(busy.trials, (t) => t.latencyMs);
  const own = stat(busy.trials, (t) => t.latencyMs - t.waitMs);
  const ownQuiet = stat(quiet.trials, (t) => t.latencyMs - t.waitMs);
  const rest = stat(busy.trials, (t) => t.restOfPollMs);
  const gateway = stat(busy.trials, (t) => t.gatewayMs);
  const brokerToCloud = stat(busy.trials, (t) => t.brokerToCloudMs);
  const queued = busy.trials.map((t) => t.backlog);
  const gap = stat(busy.trials, (t) => t.pollGapMs);
  const gapQuiet = stat(quiet.trials, (t) => t.pollGapMs);
  const worst = busy.trials.reduce((w, t) => (t.latencyMs > w.latencyMs ? t : w));
  const backlogNote = `${TRIALS} trials with ${round(Math.min(...queued) / 1000)}k–${round(Math.max(...queued) / 1000)}k telemetry messages still queued (${round(busy.backlogStart / 1000)}k when the trials began, ${round(busy.backlogEnd / 1000)}k after; the gateway drained ${round(busy.drainPerS, 0)} msg/s meanwhile)`;
  const loopNote = (p: Phase): string => `event loop ${round(p.loop.utilisation * 100, 0)} % busy, delay p50 ${round(p.loop.delayP50Ms, 1)} / p99 ${round(p.loop.delayP99Ms, 1)} / max ${round(p.loop.delayMaxMs, 1)} ms, CPU ${round(p.cpuPct, 0)} % of a core`;
  report({ bench: "alarm-latency-p50", value: round(total.p50), unit: "ms", goal: POLL_MS + 50, better: "lower", note: `flag set → alarm PUBLISH received by the cloud, poll every ${POLL_MS} ms, flips at 5 %…95 % of the interval after a poll; all: ${total.all}; ${backlogNote}` });
  report({ bench: "alarm-latency-max", value: round(total.max), unit: "ms", goal: POLL_MS + 50, better: "lower", note: `worst of ${TRIALS}: ${round(worst.waitMs)} ms waiting for the poll + ${round(worst.latencyMs - worst.waitMs)} ms the gateway's own part; flag reads were ${round(gap.p50)} ms apart (p50), ${round(gap.max)} ms at most, against the ${POLL_MS} ms interval (no backlog: max ${round(gapQuiet.max)} ms)` });
  report({ bench: "alarm-latency-after-poll-p50", value: round(own.p50, 2), unit: "ms", goal: 50, better: "lower", note: `latency − time until the next read of the flag (the gateway's own part) behind the backlog; all: ${own.all}; split p50: rest of the poll ${round(rest.p50)} ms (FC 02 answered → FC 04 sent), poll end → broker ${round(gateway.p50)} ms, broker → cloud ${round(brokerToCloud.p50, 2)} ms; gateway ${loopNote(busy)}` });
  report({ bench: "alarm-latency-after-poll-max", value: round(own.max, 2), unit: "ms", goal: 50, better: "lower", note: `worst of ${TRIALS} behind the backlog; rest of the poll max ${round(rest.max)} ms, poll end → broker max ${round(gateway.max)} ms, broker → cloud max ${round(brokerToCloud.max, 2)} ms` });
  report({ bench: "alarm-latency-after-poll-no-backlog-p50", value: round(ownQuiet.p50, 2), unit: "ms", goal: 50, better: "lower", note: `peer: the same gateway and trials with an empty outbox; all: ${ownQuiet.all}; ${loopNote(quiet)}` });
  report({ bench: "alarm-latency-backlog-cost", value: round(own.p50 / ownQuiet.p50, 1), unit: "ratio", better: "lower", note: "the gateway's own part (p50) behind a draining 100k backlog over the same with an empty outbox" });
}
