// Typed errors of the codec: each has a stable code so callers (edge decoders, simulator, cloud) can count and map them.

import { AgriError } from "../errors.js";

export class CodecError extends AgriError {
  constructor(code: string, message: string) {
    super(code, false, message);
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
