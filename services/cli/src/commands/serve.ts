import { InvalidArgumentError } from "commander";
import { withCommandLog, withLogOptions, type LogOptions } from "../command-log.js";
import type { RegisterCommand } from "../context.js";
import { serve } from "../serve.js";

const port = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError("--port must be a whole number from 0 to 65535");
  return n;
};

export const registerServe: RegisterCommand = (program, ctx) => {
  withLogOptions(
    program
      .command("serve")
      .summary("the local stack, every service and the API on 127.0.0.1 until Ctrl-C")
      .description(
        "Start the local stack (--stack) and every service in this process, with the ingestion API on 127.0.0.1:<port>, " +
          "print its URL and how to make a key (docpipe keys create --stack <name> ...), and run until SIGINT or SIGTERM. " +
          "The local server for a person, a client library or a test. The JSON logs go to a file under .local/<stack>/logs unless --verbose.",
      )
      .option("--port <n>", "the API's port (0 picks a free one)", port, 8080),
  ).action(async (opts: LogOptions & { port: number }) => {
    await withCommandLog(ctx, "serve", opts, (log) => serve({ logger: log.logger, stackName: opts.stack, port: opts.port, out: ctx.stdout }));
  });
};
