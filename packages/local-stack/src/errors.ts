/** A stand-in could not be started, configured or stopped. */
export class LocalStackError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LocalStackError";
  }
}
