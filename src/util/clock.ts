/**
 * Time is injected everywhere (DESIGN rule 6): the daemon uses RealClock, tests a ManualClock they
 * advance by hand, and `ballast simulate` a VirtualClock whose sleeps return at once.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after ms (rejects with the signal's reason when aborted). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Calls fn every ms until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
  /**
   * Optional monotonic milliseconds (any origin), for durations: the wall time of now() may be stepped by hours
   * (NTP, a VM restored from a snapshot) in the middle of one. Clocks without it measure with now().
   */
  monotonicMs?(): number;
}

function abortError(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new Error(typeof r === "string" ? r : "aborted");
}

export const realClock: Clock = {
  now: () => Date.now(),
  monotonicMs: () => performance.now(),
  sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(abortError(signal));
      const t = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      const onAbort = (): void => {
        clearTimeout(t);
        reject(abortError(signal as AbortSignal));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  },
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return () => clearInterval(t);
  },
};

interface Timer {
  at: number;
  seq: number;
  fire: () => void;
  period?: number;
}

/** Test clock: nothing happens until advance() moves time; timers fire in time order. */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: Timer[] = [];

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(abortError(signal));
      const timer: Timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fire: resolve };
      this.timers.push(timer);
      signal?.addEventListener(
        "abort",
        () => {
          this.timers = this.timers.filter((x) => x !== timer);
          reject(abortError(signal));
        },
        { once: true },
      );
    });
  }

  every(ms: number, fn: () => void): () => void {
    const timer: Timer = { at: this.t + ms, seq: this.seq++, fire: fn, period: ms };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((x) => x !== timer);
    };
  }

  /** Pending timers (for assertions that nothing is left waiting). */
  get pending(): number {
    return this.timers.length;
  }

  /** Moves time forward by ms, firing due timers in order and letting promise chains run between them. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await flush();
    for (;;) {
      const next = this.timers
        .filter((x) => x.at <= end)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.t = next.at;
      if (next.period !== undefined) next.at += next.period;
      else this.timers = this.timers.filter((x) => x !== next);
      next.fire();
      await flush();
    }
    this.t = end;
    await flush();
  }
}

/** Lets resolved promises and I/O callbacks run (a few macrotask turns). */
export async function flush(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Fast-forward clock for one sequential actor: a sleep moves time on and returns at once. */
export class VirtualClock implements Clock {
  constructor(private t: number = Date.UTC(2026, 0, 1)) {}
  now(): number {
    return this.t;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    this.t += Math.max(0, ms);
    return Promise.resolve();
  }
  every(): () => void {
    // Nothing runs in the background of a fast-forward run; callers drive rounds themselves.
    return () => undefined;
  }
  set(ms: number): void {
    this.t = Math.max(this.t, ms);
  }
}
