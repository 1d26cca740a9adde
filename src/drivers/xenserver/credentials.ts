import { readFile } from "node:fs/promises";
import { DriverError } from "../driver.js";

export interface Credentials {
  readonly user: string;
  readonly password: string;
}

/**
 * Reads "user:password" (first line; the password may contain colons) from a pool's credentials file.
 * Errors name the file and what is wrong, never its content.
 */
export async function readCredentials(file: string, pool: string): Promise<Credentials> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "unreadable";
    throw new DriverError(`pool ${pool}: cannot read credentials file ${file} (${code})`, "CREDENTIALS_UNREADABLE");
  }
  const line = text.split(/\r?\n/, 1)[0] ?? "";
  const colon = line.indexOf(":");
  if (colon <= 0 || colon === line.length - 1) {
    throw new DriverError(
      `pool ${pool}: credentials file ${file} must hold one line "user:password" (non-empty user and password)`,
      "CREDENTIALS_MALFORMED",
    );
  }
  return { user: line.slice(0, colon), password: line.slice(colon + 1) };
}
