export {
  createApiKey,
  listApiKeys,
  disableApiKey,
  rotateApiKey,
  upsertPlan,
  listPlans,
  generateKey,
  hashKey,
  KeyManagementError,
  type CallerKey,
  type CreateKeyInput,
  type CreatedKey,
  type CreatePlanInput,
  type QuotaPeriod,
} from "./keys.js";
export { admitRequest, allowListProblem, prefixWithin, type AuthResult, type RateDecision } from "./admit.js";
export {
  meterBatch,
  meterQuotaRefusal,
  quotaStatus,
  chargeDocuments,
  keyUsage,
  usageReport,
  type QuotaStatus,
  type UsageRow,
} from "./metering.js";
