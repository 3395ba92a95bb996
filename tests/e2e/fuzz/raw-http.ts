import { connect } from "node:net";

/** An HTTP/1.1 request as bytes on a socket: nothing is checked or normalised on the way. */
export interface RawRequest {
  method: string;
  /** The request target as sent: path and query, already encoded (or not) by the caller. */
  target: string;
  headers: [string, string][];
  body?: string;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
}

function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf("\r\n", at);
    if (eol < 0) break;
    const size = parseInt(body.subarray(at, eol).toString("latin1"), 16);
    if (!(size > 0)) break;
    parts.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

/** Parses the final answer of a closed connection (1xx interim answers skipped). */
function parse(all: Buffer): RawResponse {
  let rest = all;
  for (;;) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) return { status: 0, headers: {}, text: rest.toString("utf8") };
    const [statusLine, ...lines] = rest.subarray(0, end).toString("latin1").split("\r\n");
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? "")?.[1] ?? 0);
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(":");
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const body = rest.subarray(end + 4);
    if (status >= 100 && status < 200) {
      rest = body;
      continue;
    }
    const length = headers["content-length"];
    const bytes = headers["transfer-encoding"]?.includes("chunked") ? dechunk(body) : length !== undefined ? body.subarray(0, Number(length)) : body;
    return { status, headers, text: bytes.toString("utf8") };
  }
}

/**
 * Sends one request on its own connection (`Connection: close`, `Host` and `Content-Length`
 * added) and resolves with the answer once the server closes it. A server that neither answers
 * nor closes within `timeoutMs` rejects.
 */
export function send(port: number, req: RawRequest, timeoutMs = 20_000): Promise<RawResponse> {
  const body = req.body === undefined ? undefined : Buffer.from(req.body, "utf8");
  const head =
    `${req.method} ${req.target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n` +
    req.headers.map(([k, v]) => `${k}: ${v}\r\n`).join("") +
    (body ? `Content-Length: ${body.length}\r\n` : "") +
    "\r\n";
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms to ${req.method} ${req.target.slice(0, 200)}`));
    });
    socket.on("data", (c: Buffer) => chunks.push(c));
    // The server may close (and reset) as soon as it has answered a request it refused: what arrived is the answer.
    socket.on("error", () => undefined);
    socket.on("close", () => resolve(parse(Buffer.concat(chunks))));
    socket.write(Buffer.concat([Buffer.from(head, "utf8"), ...(body ? [body] : [])]));
  });
}
