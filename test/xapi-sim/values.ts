/**
 * Values of XAPI records. XAPI's wire types differ by transport, so records keep the XAPI type:
 * int64 → bigint (JSON number / XML-RPC string), float → number (double both ways), datetime → XapiDate
 * (JSON string / XML-RPC dateTime.iso8601).
 */
export class XapiDate {
  constructor(readonly ms: number) {}

  /** XAPI's datetime text, e.g. 20260101T00:00:00Z. */
  toString(): string {
    return new Date(this.ms).toISOString().replace(/\.\d{3}Z$/, "Z").replace(/-/g, "");
  }
}

/** A 32-bit int (XML-RPC <i4>): the few places XAPI sends one, e.g. event.from's valid_ref_counts. */
export class Int32 {
  constructor(readonly value: number) {}
}

export type XValue = string | number | boolean | bigint | Int32 | XapiDate | readonly XValue[] | XStruct;
export interface XStruct {
  readonly [key: string]: XValue;
}

/** A record field map as stored; it is serialised when answered, so in-place changes are never half-seen. */
export type XRecord = Record<string, XValue>;

export const NULL_REF = "OpaqueRef:NULL";

const MiB = 1048576n;
export const mibToBytes = (mib: number): bigint => BigInt(Math.round(mib)) * MiB;
export const bytesToMib = (bytes: bigint): number => Number(bytes / MiB);

/** Plain JSON for JSON-RPC: bigint becomes a number (XAPI's JSON-RPC sends int64 as numbers). */
export function toJson(v: XValue): unknown {
  if (typeof v === "bigint") return Number(v);
  if (v instanceof XapiDate) return v.toString();
  if (v instanceof Int32) return v.value;
  if (Array.isArray(v)) return (v as readonly XValue[]).map(toJson);
  if (typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as XStruct)) out[k] = toJson(x);
    return out;
  }
  return v;
}

/** Typed reads of stored fields (records are loosely typed maps). */
export const str = (v: XValue | undefined): string => (typeof v === "string" ? v : "");
export const refList = (v: XValue | undefined): string[] => (Array.isArray(v) ? (v as XValue[]).map(str) : []);
export const int64 = (v: XValue | undefined): bigint => (typeof v === "bigint" ? v : 0n);
