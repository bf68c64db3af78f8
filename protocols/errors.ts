// The one shape of every error this project throws on purpose: a stable code (documented in the error tables of
// README.md and protocols/README.md), a retry flag, and the class name as `name`. Subclasses add context fields.

export class AgriError extends Error {
  constructor(
    readonly code: string,
    readonly retryable: boolean,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}
