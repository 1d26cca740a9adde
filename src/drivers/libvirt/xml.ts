/**
 * A small, strict XML reader for libvirt's domain XML: elements, attributes, text, comments, CDATA, processing
 * instructions and the predefined and numeric entities. No DTDs (libvirt never emits one). Namespaces are
 * resolved so metadata can be matched by namespace URI, whatever prefix it was written with.
 */

export interface XmlElement {
  /** Qualified name as written (prefix:local). */
  readonly name: string;
  readonly local: string;
  /** Namespace URI of the element, "" when none. */
  readonly ns: string;
  readonly attrs: ReadonlyMap<string, string>;
  readonly children: readonly XmlElement[];
  /** Concatenated character data directly inside this element. */
  readonly text: string;
}

export class XmlError extends Error {
  override readonly name = "XmlError";
}

const NAME = /[A-Za-z_:][-A-Za-z0-9_:.]*/y;
const ENTITIES: Readonly<Record<string, string>> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

interface Building {
  name: string;
  attrs: Map<string, string>;
  children: XmlElement[];
  text: string;
  scope: ReadonlyMap<string, string>;
}

function decode(s: string, at: number): string {
  return s.replace(/&([^;&\s]*);?/g, (m: string, ent: string) => {
    if (!m.endsWith(";")) throw new XmlError(`unterminated entity '${m}' near offset ${at}`);
    if (ent.startsWith("#x")) return String.fromCodePoint(parseInt(ent.slice(2), 16));
    if (ent.startsWith("#")) return String.fromCodePoint(parseInt(ent.slice(1), 10));
    const v = ENTITIES[ent];
    if (v === undefined) throw new XmlError(`unknown entity '&${ent};' near offset ${at}`);
    return v;
  });
}

function split(name: string): [prefix: string, local: string] {
  const i = name.indexOf(":");
  return i < 0 ? ["", name] : [name.slice(0, i), name.slice(i + 1)];
}

/** Parses a whole document and returns its root element; throws XmlError on anything malformed. */
export function parseXml(src: string): XmlElement {
  let i = 0;
  const stack: Building[] = [];
  let root: XmlElement | undefined;
  const fail = (msg: string): never => {
    throw new XmlError(`${msg} at offset ${i}`);
  };
  const readName = (): string => {
    NAME.lastIndex = i;
    const m = NAME.exec(src);
    if (!m) return fail("expected a name");
    i += m[0].length;
    return m[0];
  };
  const skipWs = (): void => {
    while (i < src.length && /\s/.test(src[i] as string)) i++;
  };

  while (i < src.length) {
    const lt = src.indexOf("<", i);
    const textEnd = lt < 0 ? src.length : lt;
    if (textEnd > i) {
      const raw = src.slice(i, textEnd);
      const top = stack.at(-1);
      if (top) top.text += decode(raw, i);
      else if (raw.trim() !== "") fail("text outside the root element");
      i = textEnd;
      continue;
    }
    if (src.startsWith("<!--", i)) {
      const end = src.indexOf("-->", i + 4);
      if (end < 0) fail("unterminated comment");
      i = end + 3;
    } else if (src.startsWith("<![CDATA[", i)) {
      const end = src.indexOf("]]>", i + 9);
      const top = stack.at(-1);
      if (end < 0 || !top) fail("misplaced or unterminated CDATA");
      (top as Building).text += src.slice(i + 9, end);
      i = end + 3;
    } else if (src.startsWith("<?", i)) {
      const end = src.indexOf("?>", i + 2);
      if (end < 0) fail("unterminated processing instruction");
      i = end + 2;
    } else if (src.startsWith("<!", i)) {
      fail("DTDs are not supported");
    } else if (src.startsWith("</", i)) {
      i += 2;
      const name = readName();
      skipWs();
      if (src[i] !== ">") fail(`expected '>' to close </${name}`);
      i++;
      const open = stack.pop();
      if (!open) return fail(`unexpected </${name}>`);
      if (open.name !== name) fail(`</${name}> does not close <${open.name}>`);
      const done = finish(open);
      const parent = stack.at(-1);
      if (parent) parent.children.push(done);
      else root = done;
    } else {
      if (root) fail("content after the root element");
      i++;
      const name = readName();
      const attrs = new Map<string, string>();
      for (;;) {
        const before = i;
        skipWs();
        if (src.startsWith("/>", i) || src[i] === ">") break;
        if (i === before) fail(`expected whitespace before an attribute of <${name}>`);
        const key = readName();
        skipWs();
        if (src[i] !== "=") fail(`expected '=' after attribute ${key}`);
        i++;
        skipWs();
        const q = src[i];
        if (q !== '"' && q !== "'") return fail(`expected a quoted value for attribute ${key}`);
        const end = src.indexOf(q, i + 1);
        if (end < 0) fail(`unterminated value of attribute ${key}`);
        const value = src.slice(i + 1, end);
        if (value.includes("<")) fail(`'<' in the value of attribute ${key}`);
        if (attrs.has(key)) fail(`duplicate attribute ${key} on <${name}>`);
        attrs.set(key, decode(value, i));
        i = end + 1;
      }
      const parentScope = stack.at(-1)?.scope ?? new Map<string, string>();
      let scope: ReadonlyMap<string, string> = parentScope;
      for (const [k, v] of attrs) {
        if (k === "xmlns" || k.startsWith("xmlns:")) {
          if (scope === parentScope) scope = new Map(parentScope);
          (scope as Map<string, string>).set(k === "xmlns" ? "" : k.slice(6), v);
        }
      }
      const el: Building = { name, attrs, children: [], text: "", scope };
      if (src.startsWith("/>", i)) {
        i += 2;
        const done = finish(el);
        const parent = stack.at(-1);
        if (parent) parent.children.push(done);
        else root = done;
      } else {
        i++;
        stack.push(el);
      }
    }
  }
  if (stack.length > 0) fail(`<${stack.at(-1)?.name ?? ""}> is not closed`);
  if (!root) fail("no root element");
  return root as XmlElement;

  function finish(b: Building): XmlElement {
    const [prefix, local] = split(b.name);
    const ns = b.scope.get(prefix);
    if (ns === undefined && prefix !== "") fail(`undeclared namespace prefix '${prefix}' on <${b.name}>`);
    return { name: b.name, local, ns: ns ?? "", attrs: b.attrs, children: b.children, text: b.text };
  }
}

/** The first child element with this (unprefixed) name. */
export function child(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((c) => c.name === name);
}

export function children(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}
