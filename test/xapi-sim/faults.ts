/** Fault injection state: each one-shot fault is armed by a test and consumed by the next matching call or task. */
import { XapiFault } from "./errors.js";
import type { Faults } from "./index.js";

const bare = (method: string): string => method.replace(/^Async\./, "");

export class SimFaults implements Faults {
  wrongPassword = false;
  private readonly failures: { method: string; error: XapiFault }[] = [];
  private readonly drops: (string | undefined)[] = [];
  private taskFailure: XapiFault | undefined;
  /** Armed hang: for the next long task, or (a method name) for the next long task of that method. */
  private taskHang: string | true | undefined;

  constructor(private readonly onInvalidate: () => void) {}

  invalidateSessions(): void {
    this.onInvalidate();
  }

  failNextTask(code: string, params: readonly string[] = []): void {
    this.taskFailure = new XapiFault(code, params);
  }

  hangNextTask(method?: string): void {
    this.taskHang = method === undefined ? true : bare(method);
  }

  failNext(method: string, code: string, params: readonly string[] = []): void {
    this.failures.push({ method: bare(method), error: new XapiFault(code, params) });
  }

  dropNextCall(method?: string): void {
    this.drops.push(method === undefined ? undefined : bare(method));
  }

  /** The error armed for this call, if any (consumed). */
  takeFailure(method: string): XapiFault | undefined {
    const i = this.failures.findIndex((f) => f.method === bare(method));
    return i < 0 ? undefined : this.failures.splice(i, 1)[0]?.error;
  }

  /** Whether this call's connection must be dropped (consumed). */
  takeDrop(method: string): boolean {
    const i = this.drops.findIndex((m) => (m === undefined ? method !== "event.from" : m === bare(method)));
    if (i < 0) return false;
    this.drops.splice(i, 1);
    return true;
  }

  takeTaskFailure(): XapiFault | undefined {
    const f = this.taskFailure;
    this.taskFailure = undefined;
    return f;
  }

  takeTaskHang(method: string): boolean {
    if (this.taskHang === undefined || (this.taskHang !== true && this.taskHang !== bare(method))) return false;
    this.taskHang = undefined;
    return true;
  }
}
