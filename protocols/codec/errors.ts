// Typed errors of the codec: each has a stable code so callers (edge decoders, simulator, cloud) can count and map them.

export class CodecError extends Error {
  readonly code: string;
  readonly retryable = false;
  constructor(code: string, message: string) {
    super(message);
    this.name = "CodecError";
    this.code = code;
  }
}

export const CODEC_ERROR_CODES = {
  WRONG_WORD_COUNT: "PROTO_CODEC_WRONG_WORD_COUNT",
  OUT_OF_RANGE: "PROTO_CODEC_OUT_OF_RANGE",
  NOT_AN_INTEGER: "PROTO_CODEC_NOT_AN_INTEGER",
  NOT_FINITE: "PROTO_CODEC_NOT_FINITE",
  BAD_WORD: "PROTO_CODEC_BAD_WORD",
  BAD_BCD: "PROTO_CODEC_BAD_BCD",
} as const;
