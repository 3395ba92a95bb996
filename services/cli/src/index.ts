// What the tests drive in-process; the command line itself is main.ts.
export { startPipeline, type Pipeline, type PipelineOptions } from "./pipeline.js";
export { runFolder, listFiles, type RunOptions, type RunResult } from "./run.js";
export { resumeStack, type ResumeOptions, type ResumeResult } from "./resume.js";
export { watchBatch } from "./watch.js";
export { ApiClient, ApiError, reportWithDocuments, type BatchStatus, type BatchReport } from "./api.js";
export { formatReport } from "./report-table.js";
export { progressLines } from "./progress.js";
export { execute, adminCommand } from "./cli.js";
export { EXIT } from "./context.js";
export { redriveCommand } from "./redrive.js";
