/** Branded identifiers: a host name can never be passed where a VM id is expected. */
declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

export type HostId = Brand<string, "HostId">;
export type VmId = Brand<string, "VmId">;
export type CellId = Brand<string, "CellId">;

export const hostId = (s: string): HostId => s as HostId;
export const vmId = (s: string): VmId => s as VmId;
export const cellId = (s: string): CellId => s as CellId;

/** Hosts that name no cell share this one (DESIGN.md). */
export const DEFAULT_CELL: CellId = cellId("default");
