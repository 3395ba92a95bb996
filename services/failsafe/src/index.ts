export { createFailsafe, type Failsafe, type FailsafeOptions } from "./service.js";
export { redrive, queueKeyOf, RedriveError, type RedriveOptions, type RedriveResult } from "./redrive.js";
export { REPLAYS_ATTRIBUTE } from "./attributes.js";
export { configSchema, loadConfig, type FailsafeConfig } from "./config.js";
