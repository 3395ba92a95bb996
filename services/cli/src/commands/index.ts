import type { RegisterCommand } from "../context.js";
import { registerAudit } from "./audit.js";
import { registerReport, registerRetryFailed, registerStatus, registerSubmit } from "./batches.js";
import { registerKeys } from "./keys.js";
import { registerPlans } from "./plans.js";
import { registerRedrive } from "./redrive.js";
import { registerResume } from "./resume.js";
import { registerRun } from "./run.js";
import { registerServe } from "./serve.js";
import { registerStudio } from "./studio.js";
import { registerUsage } from "./usage.js";

/**
 * Every command, in the order `docpipe --help` lists them. A new command is one file in this
 * folder exporting a RegisterCommand (see run.ts; withCommandLog gives it the log file), and
 * one line here.
 */
export const commands: RegisterCommand[] = [
  registerRun,
  registerResume,
  registerServe,
  registerSubmit,
  registerStatus,
  registerReport,
  registerRetryFailed,
  registerStudio,
  registerKeys,
  registerPlans,
  registerUsage,
  registerRedrive,
  registerAudit,
];
