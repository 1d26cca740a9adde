/**
 * The seed: "You must specify vncserver_listen=0.0.0.0 or live migration does not work correctly" —
 * a display bound to one host's address cannot be re-bound on the destination. Pure parsing of
 * libvirt domain XML (the attributes this needs, not a general XML parser).
 */

export interface GraphicsListen {
  readonly domain: string;
  /** vnc, spice, … */
  readonly type: string;
  /** Address the display listens on; undefined when the XML sets none (qemu.conf's vnc_listen/spice_listen apply). */
  readonly address: string | undefined;
  /** A UNIX socket or no listener at all: nothing to re-bind on the destination. */
  readonly local: boolean;
}

const ANY = new Set(["0.0.0.0", "::", "[::]"]);

function attrs(tag: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of tag.matchAll(/([\w:-]+)\s*=\s*(?:'([^']*)'|"([^"]*)")/g)) {
    if (m[1] !== undefined) out.set(m[1], m[2] ?? m[3] ?? "");
  }
  return out;
}

const unescape = (s: string): string =>
  s.replace(/&(lt|gt|amp|apos|quot|#\d+|#x[0-9a-f]+);/gi, (_, e: string) => {
    const named: Record<string, string> = { lt: "<", gt: ">", amp: "&", apos: "'", quot: '"' };
    if (e.startsWith("#x") || e.startsWith("#X")) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith("#")) return String.fromCodePoint(Number(e.slice(1)));
    return named[e.toLowerCase()] ?? "";
  });

/** Every <graphics> device of a domain and where it listens. */
export function graphicsListens(xml: string): GraphicsListen[] {
  const domain = unescape(/<name>([^<]*)<\/name>/.exec(xml)?.[1] ?? "?");
  const out: GraphicsListen[] = [];
  for (const m of xml.matchAll(/<graphics\b([^>]*?)(\/>|>([\s\S]*?)<\/graphics>)/g)) {
    const a = attrs(m[1] ?? "");
    const type = a.get("type") ?? "?";
    const listen = /<listen\b([^>]*)\/?>/.exec(m[3] ?? "");
    const l = listen ? attrs(listen[1] ?? "") : undefined;
    const listenType = l?.get("type");
    const local = listenType === "socket" || listenType === "none" || a.has("socket");
    const address = l?.get("address") ?? a.get("listen");
    out.push({ domain, type, address: address === undefined ? undefined : unescape(address), local });
  }
  return out;
}

/** A display that would break or be unreachable after migration, with why; undefined when it is fine. */
export function graphicsProblem(g: GraphicsListen): string | undefined {
  if (g.local) return undefined;
  if (g.address === undefined) return `${g.domain}: ${g.type} sets no listen address (qemu.conf's ${g.type}_listen applies; its default is 127.0.0.1)`;
  if (ANY.has(g.address)) return undefined;
  return `${g.domain}: ${g.type} listens on ${g.address}`;
}
