export { createSplitter, type Splitter, type SplitterOptions, type SplitterRole } from "./splitter.js";
export { configSchema, loadConfig, type SplitterConfig } from "./config.js";
