import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach } from "vitest";
import { openHistory, type HistoryStore, type OpenOptions } from "../../src/store/index.js";

/** A fresh temp directory per test, removed afterwards with every store opened through it. */
export function tempStores(): {
  dir: () => string;
  open: (file?: string, opts?: OpenOptions) => HistoryStore;
  track: (s: HistoryStore) => HistoryStore;
} {
  let dir: string | undefined;
  const stores: HistoryStore[] = [];
  afterEach(() => {
    for (const s of stores.splice(0)) s.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const getDir = (): string => (dir ??= mkdtempSync(join(tmpdir(), "ballast-store-")));
  const track = (s: HistoryStore): HistoryStore => {
    stores.push(s);
    return s;
  };
  return {
    dir: getDir,
    open: (file = "history.db", opts = {}) => track(openHistory(join(getDir(), file), opts)),
    track,
  };
}
