import { pino } from "pino";

export type Logger = pino.Logger;

export interface CreateLoggerOptions {
  /** Bound as `service` on every line. */
  service: string;
  /** @defaultValue `"info"` */
  level?: string;
  /** Where lines go; tests pass a stream to read them back. @defaultValue stdout */
  destination?: pino.DestinationStream;
}

/**
 * A child re-binding a key its parent has (a runner's `service` under the process's, a worker's
 * `component` under its service's) would print that key twice on every line: its bindings are
 * rebuilt with each key once, the child's value winning.
 */
function bindEachKeyOnce(child: pino.Logger): void {
  const bindings = child.bindings(); // parsed from the serialised bindings: a repeated key keeps its last value
  (child as unknown as Record<symbol, string>)[pino.symbols.chindingsSym] = "";
  child.setBindings(bindings);
}

/**
 * The one logger factory: JSON lines with `service` bound, ISO timestamps, errors serialised
 * with their cause chain, credentials redacted should one ever reach a log call, and no key
 * twice in one line.
 */
export function createLogger(opts: CreateLoggerOptions): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level ?? "info",
    base: { service: opts.service },
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: { err: pino.stdSerializers.errWithCause },
    onChild: bindEachKeyOnce,
    redact: {
      paths: [
        "password",
        "secretAccessKey",
        "sessionToken",
        "databaseUrl",
        "credentials",
        "*.password",
        "*.secretAccessKey",
        "*.sessionToken",
        "*.databaseUrl",
        "*.credentials",
      ],
      censor: "[redacted]",
    },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** The ids a log line can carry; undefined ones are left out. */
export interface LogIds {
  batchId?: string;
  documentId?: string;
  pageNumber?: number;
  messageId?: string;
  attempt?: number;
  [key: string]: string | number | undefined;
}

/** A child logger with the given ids bound, so every line of a document's work carries them. */
export function childLogger(logger: Logger, ids: LogIds): Logger {
  const bindings: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(ids)) if (v !== undefined) bindings[k] = v;
  return logger.child(bindings);
}

/** A logger that drops everything, for callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
