export { createReconciler, type Reconciler, type ReconcilerOptions, type PassOptions, type PassResult } from "./reconciler.js";
export { configSchema, loadConfig, type ReconcilerConfig } from "./config.js";
