export {
  start,
  stackEnv,
  findRunningStack,
  REPO_ROOT,
  LOCAL_DIR,
  type LocalStack,
  type LocalStackOptions,
  type StackState,
} from "./stack.js";
export { LocalStackError } from "./errors.js";
export { freePort, isAlive } from "./process.js";
export { openStudio, type StudioOptions } from "./studio.js";
export {
  startUsagePlanGateway,
  type UsagePlanGateway,
  type UsagePlanGatewayOptions,
  type GatewayCall,
} from "./usage-plan.js";
export { startEcsAgent, type EcsAgent, type ProtectionRequest } from "./ecs-agent.js";
export { startSecretsManager, type SecretsManagerServer, type SecretsManagerOptions } from "./secrets-manager.js";
