export { createOrchestrator, type Orchestrator, type OrchestratorOptions } from "./orchestrator.js";
export { configSchema, loadConfig, type OrchestratorConfig } from "./config.js";
export { classByPageCount, isLargeBySize, defaultThresholds, type ClassifyThresholds } from "./classify.js";
