import { spawn, type ChildProcess } from "node:child_process";

/**
 * A few lines of POSIX shell that wait for the other end of their stdin to close, then stop the
 * postmaster `$1` (fast shutdown, SIGKILL after 15 s) if it is still running on data directory
 * `$2`. Shell rather than Node: it waits in `cat`, costs a megabyte, and needs no loader.
 */
const SCRIPT = `
cat >/dev/null
kill -0 "$1" 2>/dev/null || exit 0
if [ -r "/proc/$1/cmdline" ]; then tr '\\000' '\\n' <"/proc/$1/cmdline" | grep -qxF -- "$2" || exit 0; fi
kill -INT "$1" 2>/dev/null
i=0
while kill -0 "$1" 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -eq 75 ]; then kill -KILL "$1" 2>/dev/null; fi
  sleep 0.2
done
`;

/**
 * Keeps a Postgres from outliving the process that started it. Postgres runs in a process group
 * of its own (so that a Ctrl-C reaches Node first, which stops the services before the
 * database), which also means a SIGKILL of the starting process, or of its whole process
 * group, leaves Postgres running with nobody to stop it. The watchdog runs detached, in a session
 * of its own, with this process holding the only other end of its stdin: the kernel closes that
 * when this process dies, however it dies, and the watchdog then shuts Postgres down cleanly.
 */
export class PostmasterWatchdog {
  readonly #child: ChildProcess;

  constructor(postmasterPid: number, dataDir: string, owner?: { uid: number; gid: number }) {
    this.#child = spawn("sh", ["-c", SCRIPT, "docpipe-postgres-watchdog", String(postmasterPid), dataDir], {
      // As root the watchdog runs as Postgres's user, like Postgres: it can signal it and nothing else.
      ...owner,
      detached: true,
      stdio: ["pipe", "ignore", "ignore"],
    });
    // Neither the watchdog nor its pipe may keep this process alive.
    this.#child.unref();
    (this.#child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    this.#child.stdin?.on("error", () => undefined);
    this.#child.on("error", () => undefined);
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Postgres has been stopped by its owner: the watchdog ends without doing anything. */
  release(): void {
    this.#child.stdin?.end();
  }
}
