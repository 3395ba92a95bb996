export * from "./contracts.js";
export * from "./keys.js";
export { classByPageCount, isLargeBySize, defaultThresholds, type ClassifyThresholds } from "./classify.js";
export { DEFAULT_MAX_PAGES, DEFAULT_STOP_TIMEOUT_SECONDS } from "./defaults.js";
export { createLogger, childLogger, silentLogger, type Logger, type LogIds, type CreateLoggerOptions } from "./logger.js";
export {
  PermanentError,
  TransientError,
  PoisonMessageError,
  MessageRejectedError,
  QueueSendError,
  QueueNotFoundError,
  S3ObjectNotFoundError,
  S3Error,
  coerceError,
  errorCode,
  isForeignKeyViolation,
  isNotNullViolation,
  isTransient,
  type ErrorIds,
  type DocpipeErrorOptions,
} from "./errors.js";
export { fullJitterBackoff, sleep, type BackoffOptions } from "./backoff.js";
export { resolveQueueUrls, queueName, deadLetterQueueName, consumedQueue, type QueueUrls } from "./queue-urls.js";
export {
  QueueProducer,
  QueueSender,
  planBatches,
  MAX_BATCH_BYTES,
  MAX_BATCH_ENTRIES,
  type QueueProducerOptions,
  type QueueSenderOptions,
  type MessageQueueKey,
  type BatchLimits,
} from "./producer.js";
export { Liveness, serveLiveness, type LivenessProbe, type LivenessReport, type LivenessServer, type LoopState } from "./liveness.js";
export { createMetrics, noMetrics, METRICS_NAMESPACE, metricUnits, type Metrics, type MetricName, type MetricsOptions } from "./metrics.js";
export { createTaskProtection, TaskProtectionError, type TaskProtection, type TaskProtectionOptions } from "./task-protection.js";
export { createWorker } from "./worker/worker.js";
export type { Worker, WorkerOptions, WorkerObservers, WorkerStats, HandlerContext, PoisonInfo } from "./worker/types.js";
export {
  deadLetterAttributes,
  readDeadLetterInfo,
  sendToDeadLetterQueue,
  type DeadLetterInfo,
  type DeadLetterReason,
} from "./dead-letter.js";
export { createS3Client } from "./aws-clients.js";
export { download, downloadToFile, uploadFile, toS3Error, type DownloadOptions, type Downloaded } from "./s3.js";
export { parseS3Event, decodeS3Key, encodeS3Key, objectCreatedEvent, type S3Event, type S3EventRecord } from "./s3-events.js";
export { AuditWriter, type AuditRecord, type AuditOutcome, type AuditWriterOptions } from "./audit.js";
export { commonEnv, loadEnv, intEnv, ConfigError, createAwsClients, awsCredentials, type CommonEnv, type IntEnvOptions } from "./config.js";
export {
  recordPageSplit,
  recordPagesSplit,
  recordPageRendered,
  pageRenderedWrites,
  recordPageFailed,
  renderedFacts,
  logEngineMessages,
  openedDetails,
  type RenderedFacts,
  type DrawnPage,
} from "./pages.js";
export { recordDocumentSplit, recordRangeSplit, documentSplitWrites, rangeSplitWrites, recordChunks } from "./units.js";
export { batchSettings, type BatchSettings, type DamagedPagePolicy } from "./batch-settings.js";
export {
  failDocument,
  failPage,
  noteDocumentFailure,
  completeDocumentIfFinished,
  pageDoneWrites,
  pageDoneReturning,
  finishPage,
  settleBatch,
  settleBatchIfEnded,
  type PageDoneRow,
} from "./documents.js";
export { completeIfDuplicate, endWaitingDuplicates, type DuplicateOf } from "./duplicates.js";
export {
  StageRunner,
  alreadyDone,
  AlreadyDone,
  type StageRunnerOptions,
  type StageAttempt,
  type StageScope,
  type StageResult,
  type Committed,
} from "./stage/attempt.js";
export { type StageUnit, type TrailOutcome, type UnitStatement } from "./stage/trail.js";
export { runService, type RunServiceOptions, type RunnableService, type ServiceDeps } from "./run-service.js";
export {
  failureReason,
  toStageError,
  recordDeadLetter,
  recordPageDeadLetter,
  recordPoison,
  type FailureDeps,
} from "./failure.js";
export { NOW } from "./sql.js";
