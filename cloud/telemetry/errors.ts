// The telemetry store's failures, one class each with a stable code and a retry flag (ARCHITECTURE.md §5).

export const TELEMETRY_ERROR_CODES = {
  /** The database did not take a batch (down, timed out, 5xx): the buffer keeps it and retries with back-off. */
  writeFailed: "CLOUD_TELEMETRY_WRITE_FAILED",
  /** The database refused a batch as invalid (4xx): retrying cannot help, the batch is counted and dropped. */
  writeRejected: "CLOUD_TELEMETRY_WRITE_REJECTED",
  queryFailed: "CLOUD_TELEMETRY_QUERY_FAILED",
  /** A sample the store cannot key (an `at` that is not a date). */
  badSample: "CLOUD_TELEMETRY_BAD_SAMPLE",
  flushTimeout: "CLOUD_TELEMETRY_FLUSH_TIMEOUT",
  closed: "CLOUD_TELEMETRY_CLOSED",
} as const;
export type TelemetryErrorCode = (typeof TELEMETRY_ERROR_CODES)[keyof typeof TELEMETRY_ERROR_CODES];

export class TelemetryStoreError extends Error {
  constructor(
    readonly code: TelemetryErrorCode,
    readonly retryable: boolean,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "TelemetryStoreError";
  }
}

/** Is this failure worth retrying? Our own errors say so; anything else (a socket error, a timeout) is assumed to be. */
export function isRetryable(err: unknown): boolean {
  return err instanceof TelemetryStoreError ? err.retryable : true;
}

/** HTTP status → retryable: 408, 429 and 5xx are the server's trouble; other 4xx are ours. */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}
