// Finds MQTT packet boundaries in a byte stream from the fixed headers alone, so an oversized packet is refused as
// soon as its length is declared, before its body is buffered. aedes 1.2 has no packet size limit and the
// mqtt-packet 9 parser it uses has no length cap: it buffers whatever Remaining Length a client declares (up to
// 256 MB) before parsing. This scanner runs in front of it.

/** MQTT 3.1.1 §2.2.3: Remaining Length is 1..4 bytes of 7 bits each, at most 268,435,455. */
const MAX_LENGTH_BYTES = 4;

export type FrameVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly problem: "too-large"; readonly packetBytes: number; readonly maxPacketBytes: number }
  | { readonly ok: false; readonly problem: "malformed-length" };

type Phase = "type" | "length" | "body";

/**
 * Feed it every chunk in arrival order. It keeps only the current packet's header state (O(1) memory) and skips
 * bodies without reading them. A packet's size is the whole packet (fixed header + Remaining Length), as MQTT 5's
 * Maximum Packet Size counts it. After a violation every further feed returns the same verdict.
 */
export class MqttFrameScanner {
  #phase: Phase = "type";
  #remainingLength = 0;
  #multiplier = 1;
  #lengthBytes = 0;
  #bodyLeft = 0;
  #violation: FrameVerdict | undefined;

  constructor(readonly maxPacketBytes: number) {
    if (!Number.isInteger(maxPacketBytes) || maxPacketBytes < 2) throw new RangeError("maxPacketBytes must be an integer ≥ 2");
  }

  feed(chunk: Uint8Array): FrameVerdict {
    if (this.#violation !== undefined) return this.#violation;
    let i = 0;
    while (i < chunk.length) {
      switch (this.#phase) {
        case "type":
          i++;
          this.#phase = "length";
          this.#remainingLength = 0;
          this.#multiplier = 1;
          this.#lengthBytes = 0;
          break;
        case "length": {
          const byte = chunk[i++] ?? 0;
          this.#remainingLength += (byte & 0x7f) * this.#multiplier;
          this.#multiplier *= 0x80;
          this.#lengthBytes++;
          if ((byte & 0x80) !== 0) {
            if (this.#lengthBytes === MAX_LENGTH_BYTES) return this.#refuse({ ok: false, problem: "malformed-length" });
            break;
          }
          const packetBytes = 1 + this.#lengthBytes + this.#remainingLength;
          if (packetBytes > this.maxPacketBytes) {
            return this.#refuse({ ok: false, problem: "too-large", packetBytes, maxPacketBytes: this.maxPacketBytes });
          }
          this.#bodyLeft = this.#remainingLength;
          this.#phase = this.#bodyLeft === 0 ? "type" : "body";
          break;
        }
        case "body": {
          const take = Math.min(this.#bodyLeft, chunk.length - i);
          i += take;
          this.#bodyLeft -= take;
          if (this.#bodyLeft === 0) this.#phase = "type";
          break;
        }
      }
    }
    return { ok: true };
  }

  #refuse(verdict: FrameVerdict): FrameVerdict {
    this.#violation = verdict;
    return verdict;
  }
}
