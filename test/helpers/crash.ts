import type { Driver, MigrationHandle } from "../../src/drivers/driver.js";
import type { HistoryStore } from "../../src/store/index.js";
import type { Clock } from "../../src/util/clock.js";

/**
 * Models a process dying at the Nth call into the outside world (driver, store or clock): from then on
 * nothing that instance does reaches the cluster or the database, and its pending work never resumes.
 * The simulated cluster and the SQLite file live on, as a real cluster and disk would.
 */
export class Crash {
  calls = 0;
  crashed = false;
  constructor(readonly at: number) {}
  tick(): boolean {
    if (!this.crashed && ++this.calls >= this.at) this.crashed = true;
    return this.crashed;
  }
}

const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

export function crashableDriver(inner: Driver, c: Crash): Driver {
  const wrapHandle = (h: MigrationHandle): MigrationHandle => ({
    stats: () => (c.tick() ? never() : h.stats()),
    act: (a) => (c.tick() ? never() : h.act(a)),
    done: h.done.then((v) => (c.crashed ? never<typeof v>() : v)),
  });
  return {
    name: inner.name,
    capabilities: inner.capabilities,
    sample: () => (c.tick() ? never() : inner.sample()),
    migrate: (r) => (c.tick() ? never() : inner.migrate(r).then((h) => (c.crashed ? never<MigrationHandle>() : wrapHandle(h)))),
    locate: (vm) => (c.tick() ? never() : inner.locate(vm)),
    cancel: (vm) => (c.tick() ? never() : inner.cancel(vm)),
    resume: (vm, host) => (c.tick() ? never() : inner.resume(vm, host)),
    close: () => Promise.resolve(),
  };
}

/** Writes after the crash are lost, as they would be in a dead process. */
export function crashableStore(inner: HistoryStore, c: Crash): HistoryStore {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => (c.tick() ? undefined : (v as (...a: unknown[]) => unknown).apply(target, args));
    },
  });
}

export function crashableClock(inner: Clock, c: Crash): Clock {
  return {
    now: () => inner.now(),
    sleep: (ms, signal) => (c.crashed ? never() : inner.sleep(ms, signal).then(() => (c.crashed ? never<void>() : undefined))),
    every: (ms, fn) => inner.every(ms, () => (c.crashed ? undefined : fn())),
  };
}
