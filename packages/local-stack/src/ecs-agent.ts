import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** What a task has asked of its agent, in order. */
export interface ProtectionRequest {
  ProtectionEnabled: boolean;
  ExpiresInMinutes?: number;
  /** When the stand-in received it (its clock). */
  at: number;
}

export interface EcsAgent {
  /** The value ECS gives a container as ECS_AGENT_URI. */
  uri: string;
  taskArn: string;
  /** The task's protection now: enabled until `expiresAt` (ms), as ECS keeps it. */
  state(): { protectionEnabled: boolean; expiresAt?: number };
  /** Every accepted PUT, in order. */
  readonly requests: readonly ProtectionRequest[];
  /** The next PUT answers as ECS does when UpdateTaskProtection fails: a `failure` (200) or an `error` (500). */
  failNext(kind: "failure" | "error"): void;
  close(): Promise<void>;
}

/**
 * A stand-in for the ECS container agent's task scale-in protection endpoint
 * (`$ECS_AGENT_URI/task-protection/v1/state`), speaking its contract: PUT a JSON body with
 * `ProtectionEnabled` (required) and `ExpiresInMinutes` (1–2880, default 120; no other field),
 * GET the state; answers `{"protection": {"ExpirationDate", "ProtectionEnabled", "TaskArn"}}`,
 * `{"failure": {"Arn", "Detail", "Reason"}}` (status 200) or `{"error": {"Arn", "Code", "Message"}}`
 * (4xx/5xx), and protection lapses at its expiry. The agent forwards to ECS's
 * UpdateTaskProtection with the task role; here the state is kept in memory.
 */
export async function startEcsAgent(opts: { taskArn?: string; now?: () => number } = {}): Promise<EcsAgent> {
  const now = opts.now ?? Date.now;
  const taskArn = opts.taskArn ?? "arn:aws:ecs:eu-west-1:123456789012:task/docpipe/0123456789abcdef0123456789abcdef";
  const endpointId = "0123456789abcdef0123456789abcdef-3524788000";
  const path = `/api/${endpointId}/task-protection/v1/state`;
  let enabledUntil: number | undefined;
  let failNext: "failure" | "error" | undefined;
  const requests: ProtectionRequest[] = [];

  const protection = () => {
    const on = enabledUntil !== undefined && enabledUntil > now();
    return {
      ExpirationDate: on ? new Date(enabledUntil!).toISOString() : null,
      ProtectionEnabled: on,
      TaskArn: taskArn,
    };
  };
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  };
  const decodeError = { error: { Code: "InvalidParameterException", Message: "UpdateTaskProtection: failed to decode request" } };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.url !== path) return send(res, 404, { error: { Code: "ResourceNotFoundException", Message: "Invalid request: no task was found" } });
    if (req.method === "GET") return send(res, 200, { protection: protection() });
    if (req.method !== "PUT") return send(res, 405, { error: { Code: "InvalidParameterException", Message: `method ${req.method} not allowed` } });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return send(res, 400, decodeError);
    }
    if (body === null || typeof body !== "object" || Array.isArray(body)) return send(res, 400, decodeError);
    const b = body as Record<string, unknown>;
    // The agent decodes strictly: an unknown field or a wrong type fails the whole request.
    if (Object.keys(b).some((k) => k !== "ProtectionEnabled" && k !== "ExpiresInMinutes")) return send(res, 400, decodeError);
    if (b.ExpiresInMinutes !== undefined && !Number.isInteger(b.ExpiresInMinutes)) return send(res, 400, decodeError);
    if (b.ProtectionEnabled !== undefined && typeof b.ProtectionEnabled !== "boolean") return send(res, 400, decodeError);
    if (b.ProtectionEnabled === undefined) {
      return send(res, 400, { error: { Arn: taskArn, Code: "InvalidParameterException", Message: "Invalid request: does not contain 'ProtectionEnabled' field" } });
    }
    const minutes = b.ExpiresInMinutes as number | undefined;
    if (minutes !== undefined && (minutes < 1 || minutes > 2880)) {
      return send(res, 400, {
        requestID: "stand-in",
        error: { Arn: taskArn, Code: "InvalidParameterException", Message: "expiresInMinutes must be between 1 and 2880" },
      });
    }
    if (failNext) {
      const kind = failNext;
      failNext = undefined;
      return kind === "failure"
        ? send(res, 200, { failure: { Arn: taskArn, Detail: null, Reason: "TASK_NOT_VALID" } })
        : send(res, 500, { requestID: "stand-in", error: { Arn: taskArn, Code: "ServerException", Message: "stand-in server error" } });
    }
    requests.push({ ProtectionEnabled: b.ProtectionEnabled as boolean, ...(minutes !== undefined && { ExpiresInMinutes: minutes }), at: now() });
    enabledUntil = b.ProtectionEnabled ? now() + (minutes ?? 120) * 60_000 : undefined;
    return send(res, 200, { protection: protection() });
  };

  const server = createServer((req, res) => void handle(req, res).catch(() => send(res, 500, { error: { Code: "ServerException", Message: "stand-in crashed" } })));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    uri: `http://127.0.0.1:${port}/api/${endpointId}`,
    taskArn,
    state: () => {
      const p = protection();
      return { protectionEnabled: p.ProtectionEnabled, ...(p.ProtectionEnabled && { expiresAt: enabledUntil! }) };
    },
    requests,
    failNext: (kind) => void (failNext = kind),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
