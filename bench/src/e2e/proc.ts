// CPU time and memory of processes, read from /proc (Linux), so that a benchmark can charge each
// process (a service, Postgres, a mutool) for what it used while the others ran beside it.
import { readdirSync, readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100;

interface Stat {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime of the process (all its threads), in seconds. */
  own: number;
  /** cutime + cstime: what its children that it has reaped used, in seconds. */
  reaped: number;
}

function readStat(pid: number): Stat | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "latin1");
    // comm is in parentheses and may hold spaces: fields count from the last ')'.
    const close = s.lastIndexOf(")");
    const f = s.slice(close + 2).split(" ");
    const ticks = (i: number) => Number(f[i - 3]);
    return {
      pid,
      ppid: ticks(4),
      comm: s.slice(s.indexOf("(") + 1, close),
      own: (ticks(14) + ticks(15)) / TICKS_PER_SECOND,
      reaped: (ticks(16) + ticks(17)) / TICKS_PER_SECOND,
    };
  } catch {
    return undefined;
  }
}

function allStats(): Stat[] {
  const out: Stat[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const s = readStat(Number(d));
    if (s) out.push(s);
  }
  return out;
}

/**
 * CPU seconds used so far by `root` and every process below it, the exited ones included (their
 * time is in their parent's reaped counters). The difference of two readings is what the tree
 * used in between, even when processes came and went. `exclude` leaves out subtrees (e.g. a
 * service that is measured on its own) and `match` keeps only processes named so (e.g. "postgres").
 */
export function treeCpuSeconds(root: number, opts: { exclude?: ReadonlySet<number>; match?: RegExp } = {}): number {
  const stats = allStats();
  const children = new Map<number, Stat[]>();
  for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  const rootStat = stats.find((s) => s.pid === root);
  if (!rootStat) return 0;
  let total = 0;
  // A process's reaped counter holds its exited children; the live ones are counted on their own.
  const walk = (s: Stat) => {
    if (opts.exclude?.has(s.pid)) return;
    if (!opts.match || opts.match.test(s.comm)) total += s.own + s.reaped;
    for (const c of children.get(s.pid) ?? []) walk(c);
  };
  walk(rootStat);
  return total;
}

/** Peak resident memory of a process (VmHWM), in bytes; 0 once it is gone. */
export function peakRssBytes(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "latin1"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export function loadAverage(): string {
  return readFileSync("/proc/loadavg", "latin1").split(" ").slice(0, 3).join(" ");
}

/** CPU seconds of this process's children that have exited and been reaped (e.g. finished mutool runs). */
export function reapedChildrenCpuSeconds(): number {
  return readStat(process.pid)?.reaped ?? 0;
}

/** CPU seconds used so far by process pid, every thread (the exited ones too); undefined once it is gone. */
export function processCpuSeconds(pid: number): number | undefined {
  return readStat(pid)?.own;
}

/**
 * CPU seconds of each live thread of process pid, by thread id, with its name: MainThread (or the
 * process's name), WorkerThread (render workers), V8Worker (V8's own helpers: garbage collection,
 * compilation), libuv-worker (file system, zlib).
 */
export function threadCpuSeconds(pid: number): Map<number, { name: string; seconds: number }> {
  const out = new Map<number, { name: string; seconds: number }>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, "latin1").trim();
      const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, "latin1");
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      out.set(Number(tid), { name, seconds: (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}
