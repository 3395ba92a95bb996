import { existsSync, readFileSync } from "node:fs";
import net from "node:net";

/** A TCP port that is free on 127.0.0.1 right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/**
 * Whether a process with this id is running (signal 0 checks without signalling). A zombie is
 * not: it has exited and only waits for its parent to reap it, which a parent that just killed
 * it may not have done yet (Linux: state Z in /proc/<pid>/stat).
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    // With /proc, an unreadable entry means it exited in between; without (not Linux), trust the signal.
    return !existsSync("/proc");
  }
}
