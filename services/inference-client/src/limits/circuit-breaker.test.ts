import { describe, expect, it } from "vitest";
import { CircuitBreaker, type BreakerState } from "./circuit-breaker.js";
import { ManualClock } from "./clock.js";

function setup() {
  const clock = new ManualClock();
  const breaker = new CircuitBreaker({ failureThreshold: 3, cooldownMs: 1000, clock });
  const changes: BreakerState[] = [];
  breaker.onStateChange((s) => changes.push(s));
  return { clock, breaker, changes };
}

describe("CircuitBreaker", () => {
  it("opens after N consecutive failures, not after N scattered ones", () => {
    const { breaker } = setup();
    breaker.onFailure();
    breaker.onFailure();
    breaker.onSuccess();
    breaker.onFailure();
    breaker.onFailure();
    expect(breaker.state).toBe("closed");
    breaker.onFailure();
    expect(breaker.state).toBe("open");
    expect(breaker.tryAcquire()).toBe(false);
  });

  it("lets exactly one probe through after the cool-down; success closes it", async () => {
    const { clock, breaker, changes } = setup();
    for (let i = 0; i < 3; i++) breaker.onFailure();
    await clock.advance(999);
    expect(breaker.tryAcquire()).toBe(false);
    expect(breaker.remainingCooldownMs()).toBe(1);
    await clock.advance(1);
    expect(breaker.state).toBe("half-open");
    expect(breaker.tryAcquire()).toBe(true);
    expect(breaker.tryAcquire()).toBe(false);
    breaker.onSuccess();
    expect(breaker.state).toBe("closed");
    expect(breaker.tryAcquire()).toBe(true);
    expect(changes).toEqual(["open", "half-open", "closed"]);
  });

  it("a failed probe opens the circuit for another full cool-down", async () => {
    const { clock, breaker, changes } = setup();
    for (let i = 0; i < 3; i++) breaker.onFailure();
    await clock.advance(1000);
    expect(breaker.tryAcquire()).toBe(true);
    breaker.onFailure();
    expect(breaker.state).toBe("open");
    expect(breaker.remainingCooldownMs()).toBe(1000);
    expect(breaker.openCount).toBe(2);
    expect(changes).toEqual(["open", "half-open", "open"]);
  });

  it("an abandoned probe frees the probe slot", async () => {
    const { clock, breaker } = setup();
    for (let i = 0; i < 3; i++) breaker.onFailure();
    await clock.advance(1000);
    expect(breaker.tryAcquire()).toBe(true);
    breaker.onAbandon();
    expect(breaker.tryAcquire()).toBe(true);
  });
});
