export { createPageConverter, type PageConverter, type PageConverterOptions } from "./service.js";
export { loadConfig, type PageConverterConfig } from "./config.js";
