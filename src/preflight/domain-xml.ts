import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

/** The XML of every domain (running or defined) of the libvirt at `uri`. */
export type DomainXmlSource = (uri: string) => Promise<string[]>;

/**
 * Stand-in until the libvirt driver's native binding lands: the local `virsh` client against the
 * host's URI, run with an argument array (no shell), so a domain name is only ever one argv entry.
 */
export const virshDomainXml: DomainXmlSource = async (uri) => {
  const virsh = async (...args: string[]): Promise<string> => {
    try {
      return (await execFileP("virsh", ["-q", "-c", uri, ...args], { timeout: 60_000, maxBuffer: 32 << 20 })).stdout;
    } catch (e) {
      const err = e as Error & { stderr?: string; code?: string };
      if (err.code === "ENOENT") throw new Error("virsh not found (Debian package libvirt-clients) to read domain XML");
      throw new Error(`virsh ${args[0] ?? ""} on ${uri}: ${(err.stderr ?? "").trim() || err.message}`);
    }
  };
  const names = (await virsh("list", "--all", "--name"))
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  return Promise.all(names.map((n) => virsh("dumpxml", "--", n)));
};
