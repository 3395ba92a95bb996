import { coerceError } from "./errors.js";
import { silentLogger, type Logger } from "./logger.js";

export interface TaskProtectionOptions {
  /** The ECS agent's URI (ECS sets `ECS_AGENT_URI` in every container); unset, outside ECS, holds are free. */
  agentUri?: string;
  /** Minutes one protection lasts (1–2880); renewed at half of it while work is held. @defaultValue 60 */
  expiresInMinutes?: number;
  /** How often a held protection is renewed. @defaultValue half of `expiresInMinutes` */
  renewEveryMs?: number;
  /** Time allowed for one call to the agent. @defaultValue 5000 */
  requestTimeoutMs?: number;
  logger?: Logger;
}

export interface TaskProtection {
  /**
   * Runs `work` with the task protected from scale-in and deployments. Holds overlap: the task is
   * protected from the first hold until the last one ends. A protection the agent refuses is
   * logged and the work runs anyway: it is idempotent, and an unprotected task only risks a retry.
   */
  hold<T>(work: () => Promise<T>): Promise<T>;
  /** Holds running now. */
  readonly holds: number;
}

/** What the agent answered, as its task-protection endpoint documents it. */
interface AgentAnswer {
  protection?: { ProtectionEnabled?: boolean; ExpirationDate?: string | null; TaskArn?: string };
  failure?: { Arn?: string; Reason?: string; Detail?: string | null };
  error?: { Arn?: string; Code?: string; Message?: string };
}

/** The agent did not set the protection asked for. */
export class TaskProtectionError extends Error {
  override readonly name = "TaskProtectionError";
  /** The agent's or ECS's code (e.g. `ServerException`, `TASK_NOT_VALID`), or `unreachable`. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * ECS task scale-in protection through the container agent
 * (`PUT $ECS_AGENT_URI/task-protection/v1/state`), held while long jobs run: a large split, a
 * failsafe break-down. Scale-in and deployments then wait for the job instead of stopping the
 * task under it, and the service can scale in normally the rest of the time.
 */
export function createTaskProtection(opts: TaskProtectionOptions = {}): TaskProtection {
  const { agentUri } = opts;
  const logger = (opts.logger ?? silentLogger()).child({ component: "task-protection" });
  const minutes = Math.min(2880, Math.max(1, Math.round(opts.expiresInMinutes ?? 60)));
  const renewEveryMs = opts.renewEveryMs ?? (minutes * 60_000) / 2;
  const timeoutMs = opts.requestTimeoutMs ?? 5_000;
  let holds = 0;
  let renewal: NodeJS.Timeout | undefined;
  // Calls to the agent go one at a time, in order, so a release never overtakes the protection it ends.
  let chain: Promise<void> = Promise.resolve();

  async function put(enabled: boolean): Promise<void> {
    let answer: AgentAnswer;
    let status: number;
    try {
      const res = await fetch(`${agentUri}/task-protection/v1/state`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(enabled ? { ProtectionEnabled: true, ExpiresInMinutes: minutes } : { ProtectionEnabled: false }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = res.status;
      answer = (await res.json()) as AgentAnswer;
    } catch (e) {
      throw new TaskProtectionError("unreachable", `the ECS agent did not answer: ${coerceError(e).message}`, { cause: e });
    }
    if (answer.error) throw new TaskProtectionError(answer.error.Code ?? `http_${status}`, answer.error.Message ?? `the agent answered ${status}`);
    if (answer.failure) throw new TaskProtectionError(answer.failure.Reason ?? "failure", answer.failure.Detail ?? answer.failure.Reason ?? "ECS refused");
    if (answer.protection?.ProtectionEnabled !== enabled) {
      throw new TaskProtectionError("unexpected_answer", `asked for protection ${enabled}, the agent answered ${JSON.stringify(answer)}`);
    }
  }

  /** Queues a call; its failure is logged, never thrown at the work. */
  function request(enabled: boolean): Promise<void> {
    chain = chain.then(() =>
      put(enabled).then(
        () => logger.debug({ protectionEnabled: enabled, expiresInMinutes: enabled ? minutes : undefined }, "task protection set"),
        (err: TaskProtectionError) => logger.warn({ err, errorCode: err.code, protectionEnabled: enabled }, "setting task protection failed"),
      ),
    );
    return chain;
  }

  return {
    async hold<T>(work: () => Promise<T>): Promise<T> {
      if (!agentUri) return work();
      if (holds++ === 0) {
        renewal = setInterval(() => void request(true), renewEveryMs);
        renewal.unref();
        await request(true);
      } else {
        await chain; // the protection the first hold asked for
      }
      try {
        return await work();
      } finally {
        if (--holds === 0) {
          clearInterval(renewal);
          await request(false);
        }
      }
    },
    get holds() {
      return holds;
    },
  };
}
