export {
  startReferenceModel,
  defaultFaults,
  type Faults,
  type ModelStats,
  type ReferenceModel,
  type ReferenceModelOptions,
  type InvocationResponse,
} from "./server.js";
export { measureInk, ImageDecodeError, type InkOptions, type InkResult } from "./ink.js";
