import { execFileSync } from "node:child_process";

/** End-to-end tests run the compiled CLI, exactly as `npm start` does: build it once per test run. */
export default function setup(): void {
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
}
