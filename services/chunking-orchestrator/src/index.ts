export { createOrchestrator, type Orchestrator, type OrchestratorOptions } from "./orchestrator.js";
export { configSchema, loadConfig, type OrchestratorConfig } from "./config.js";
