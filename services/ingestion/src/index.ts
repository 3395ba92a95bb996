export { buildApp, type AppOptions, type IngestionApp } from "./app.js";
export { createIngestionService, type IngestionService, type IngestionServiceOptions } from "./service.js";
export { BatchLister, isTransient, type BatchListerOptions, type ListerHooks, type ListingPosition, type PageEvent } from "./lister.js";
export { configSchema, loadConfig, type IngestionConfig } from "./config.js";
export { CreateBatchBody, bucketNameProblem, overlappingPrefixes } from "./schemas.js";
export { HttpError, ValidationError, NotFoundError, BucketError, ListingError, AccessError, ThrottledError, type ErrorBody } from "./errors.js";
export {
  createApiKey,
  listApiKeys,
  disableApiKey,
  rotateApiKey,
  upsertPlan,
  listPlans,
  usageReport,
  keyUsage,
  admitRequest,
  quotaStatus,
  allowListProblem,
  generateKey,
  hashKey,
  KeyManagementError,
  type CallerKey,
  type CreateKeyInput,
  type CreatedKey,
  type CreatePlanInput,
  type QuotaPeriod,
  type QuotaStatus,
  type RateDecision,
  type UsageRow,
} from "./keys.js";
export { BatchAccepted, BatchStatusResponse, DocumentsPage, UsageResponse, ErrorResponse } from "./schemas.js";
export { buildBatchReport, type BatchReport, type DocumentReport } from "./report.js";
export { retryFailed, RetryError, isContentFailure, type RetryResult, type RetryDeps } from "./retry.js";
