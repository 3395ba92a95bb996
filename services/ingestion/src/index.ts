// What the single-box deployment (services/cli) and the tests start: the app and the service around it.
export { buildApp, type AppOptions, type IngestionApp } from "./app.js";
export { countStalledBatches } from "./stall.js";
export { createIngestionService, type IngestionService, type IngestionServiceOptions } from "./service.js";
export { openApiDocument } from "./openapi-document.js";
