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
export { admitRequest, takeToken, allowListProblem, prefixWithin, type Admitted, type AuthResult, type RateDecision } from "./admit.js";
export { KeyGate, type KeyGateOptions, type GateDecision } from "./gate.js";
export {
  meterBatch,
  meterQuotaRefusal,
  quotaStatus,
  chargeDocuments,
  admitDocumentPages,
  type PageAdmission,
  keyUsage,
  usageReport,
  type QuotaStatus,
  type UsageRow,
} from "./metering.js";
