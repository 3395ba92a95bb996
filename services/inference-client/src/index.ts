export { createInferenceClient, type InferenceClient, type InferenceClientOptions, type InferenceClientStatus } from "./service.js";
export { loadConfig, buildModelInvoker, type InferenceClientConfig } from "./config.js";
export { ProtectedModelClient, type ProtectionOptions, type InvocationOutcome } from "./protected-client.js";
export {
  HttpModelInvoker,
  SageMakerModelInvoker,
  ModelResponse,
  type ModelInvoker,
  type ModelRequest,
  type HttpInvokerOptions,
  type SageMakerInvokerOptions,
} from "./model/invoker.js";
export { ModelUnavailableError, ModelThrottledError, ModelRejectedError } from "./model/errors.js";
export { SecretApiKey, fixedApiKey, type ApiKeySource, type SecretApiKeyOptions } from "./model/api-key.js";
