export { buildApp, type AppOptions, type IngestionApp } from "./app.js";
export { createIngestionService, type IngestionService, type IngestionServiceOptions } from "./service.js";
export { BatchLister, isTransient, type BatchListerOptions, type ListerHooks, type ListingPosition, type PageEvent } from "./lister.js";
export { configSchema, loadConfig, type IngestionConfig } from "./config.js";
export { CreateBatchBody, bucketNameProblem, overlappingPrefixes } from "./schemas.js";
export { HttpError, ValidationError, NotFoundError, BucketError, ListingError, type ErrorBody } from "./errors.js";
export { buildBatchReport, type BatchReport, type DocumentReport } from "./report.js";
