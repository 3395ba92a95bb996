import { describe, expect, it } from "vitest";
import { Semaphore } from "./semaphore.js";
import { flushMicrotasks } from "./clock.js";

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("Semaphore", () => {
  it("never lets more than `limit` callers in, and serves waiters in order", async () => {
    const sem = new Semaphore(2);
    const order: number[] = [];
    const gates = [0, 1, 2, 3, 4].map(() => deferred());
    const runs = gates.map((g, i) =>
      sem.run(async () => {
        order.push(i);
        await g.promise;
      }),
    );
    await flushMicrotasks();
    expect(order).toEqual([0, 1]);
    expect(sem.inUse).toBe(2);
    expect(sem.waiting).toBe(3);
    gates[1]!.resolve();
    await flushMicrotasks();
    expect(order).toEqual([0, 1, 2]);
    gates.forEach((g) => g.resolve());
    await Promise.all(runs);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect(sem.maxInUse).toBe(2);
    expect(sem.inUse).toBe(0);
  });

  it("releases the permit when the task throws, and ignores a second release", async () => {
    const sem = new Semaphore(1);
    await expect(sem.run(() => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    const release = await sem.acquire();
    release();
    release();
    expect(sem.inUse).toBe(0);
  });

  it("an aborted waiter leaves the queue without taking a permit", async () => {
    const sem = new Semaphore(1);
    const release = await sem.acquire();
    const ac = new AbortController();
    const waiting = sem.acquire(ac.signal);
    expect(sem.waiting).toBe(1);
    ac.abort(new Error("stop"));
    await expect(waiting).rejects.toThrow("stop");
    expect(sem.waiting).toBe(0);
    release();
    expect(sem.inUse).toBe(0);
  });
});
