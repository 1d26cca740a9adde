/**
 * The XML-RPC subset XAPI speaks, hand-written (no XML dependency): requests are parsed into plain JS
 * values; responses are XAPI's {Status, Value | ErrorDescription} struct. Output has no whitespace between
 * elements because the client parses with trim off and would read the whitespace as a string value.
 */
import { Int32, XapiDate, type XStruct, type XValue } from "./values.js";

interface XmlNode {
  readonly name: string;
  readonly children: (XmlNode | string)[];
}

const ENTITIES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, e: string) => {
    if (e.startsWith("#x")) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith("#")) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return ENTITIES[e] ?? whole;
  });
}

function escapeXml(text: string): string {
  return text.replace(/[<>&]/g, (c) => (c === "<" ? "&lt;" : c === ">" ? "&gt;" : "&amp;"));
}

/** Parses well-formed XML without attributes of interest into a tree; throws on malformed input. */
function parseXml(xml: string): XmlNode {
  const root: XmlNode = { name: "#root", children: [] };
  const stack: XmlNode[] = [root];
  const tag = /<(\/?)([A-Za-z_][\w.:-]*)[^>]*?(\/?)>|<\?[\s\S]*?\?>|<!--[\s\S]*?-->/g;
  let last = 0;
  for (let m = tag.exec(xml); m !== null; m = tag.exec(xml)) {
    const top = stack[stack.length - 1] as XmlNode;
    if (m.index > last) top.children.push(decodeEntities(xml.slice(last, m.index)));
    last = tag.lastIndex;
    const [, closing, name, selfClosing] = m;
    if (name === undefined) continue; // declaration or comment
    if (closing === "/") {
      if (stack.length < 2 || top.name !== name) throw new Error(`unbalanced </${name}>`);
      stack.pop();
    } else {
      const node: XmlNode = { name, children: [] };
      top.children.push(node);
      if (selfClosing !== "/") stack.push(node);
    }
  }
  if (stack.length !== 1) throw new Error("unterminated XML");
  const first = root.children.find((c): c is XmlNode => typeof c !== "string");
  if (first === undefined) throw new Error("no XML element");
  return first;
}

const elements = (n: XmlNode): XmlNode[] => n.children.filter((c): c is XmlNode => typeof c !== "string");
const text = (n: XmlNode): string => n.children.filter((c): c is string => typeof c === "string").join("");

function child(n: XmlNode, name: string): XmlNode {
  const c = elements(n).find((e) => e.name === name);
  if (c === undefined) throw new Error(`<${n.name}> has no <${name}>`);
  return c;
}

/** Decodes one <value> into plain JS (ints as numbers, dates as their text, nil as null). */
function decodeValue(value: XmlNode): unknown {
  const [typed] = elements(value);
  if (typed === undefined) return text(value); // untyped value = string
  switch (typed.name) {
    case "string":
    case "dateTime.iso8601":
      return text(typed);
    case "int":
    case "i4":
    case "i8":
    case "double":
      return Number(text(typed));
    case "boolean":
      return text(typed).trim() === "1";
    case "nil":
      return null;
    case "array":
      return elements(child(typed, "data")).map(decodeValue);
    case "struct":
      return Object.fromEntries(
        elements(typed).map((member) => [text(child(member, "name")), decodeValue(child(member, "value"))]),
      );
    default:
      throw new Error(`unsupported XML-RPC type <${typed.name}>`);
  }
}

export function parseMethodCall(xml: string): { method: string; params: unknown[] } {
  const call = parseXml(xml);
  if (call.name !== "methodCall") throw new Error(`expected <methodCall>, got <${call.name}>`);
  const params = elements(call).find((e) => e.name === "params");
  return {
    method: text(child(call, "methodName")).trim(),
    params: params === undefined ? [] : elements(params).map((p) => decodeValue(child(p, "value"))),
  };
}

/** One value as XAPI writes it: strings and int64 untyped, floats as double. Also the text of task.result. */
export function formatValue(v: XValue): string {
  if (typeof v === "string") return `<value>${escapeXml(v)}</value>`;
  if (typeof v === "bigint") return `<value>${v}</value>`;
  if (typeof v === "number") return `<value><double>${Number.isFinite(v) ? v : 0}</double></value>`;
  if (typeof v === "boolean") return `<value><boolean>${v ? 1 : 0}</boolean></value>`;
  if (v instanceof XapiDate) return `<value><dateTime.iso8601>${v.toString()}</dateTime.iso8601></value>`;
  if (v instanceof Int32) return `<value><i4>${v.value}</i4></value>`;
  if (Array.isArray(v)) return `<value><array><data>${(v as readonly XValue[]).map(formatValue).join("")}</data></array></value>`;
  const members = Object.entries(v as XStruct)
    .map(([k, x]) => `<member><name>${escapeXml(k)}</name>${formatValue(x)}</member>`)
    .join("");
  return `<value><struct>${members}</struct></value>`;
}

const response = (struct: XStruct): string =>
  `<?xml version="1.0"?><methodResponse><params><param>${formatValue(struct)}</param></params></methodResponse>`;

export const formatSuccess = (value: XValue): string => response({ Status: "Success", Value: value });

export const formatFailure = (code: string, params: readonly string[]): string =>
  response({ Status: "Failure", ErrorDescription: [code, ...params] });
