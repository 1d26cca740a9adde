import { DriverError } from "../driver.js";
import type { HostId } from "../../model/index.js";
import { ErrorCode, LibvirtError } from "./native/index.js";

const CODES: ReadonlyMap<number, string> = new Map([
  [ErrorCode.NO_DOMAIN, "VM_NOT_FOUND"],
  [ErrorCode.NO_SUPPORT, "NOT_SUPPORTED"],
  [ErrorCode.ARGUMENT_UNSUPPORTED, "NOT_SUPPORTED"],
  [ErrorCode.OPERATION_UNSUPPORTED, "NOT_SUPPORTED"],
  [ErrorCode.OPERATION_INVALID, "OPERATION_INVALID"],
  [ErrorCode.INVALID_ARG, "INVALID_ARGUMENT"],
  [ErrorCode.MIGRATE_UNSAFE, "MIGRATE_UNSAFE"],
  [ErrorCode.OPERATION_ABORTED, "OPERATION_ABORTED"],
  [ErrorCode.OPERATION_FAILED, "OPERATION_FAILED"],
  [ErrorCode.OPERATION_TIMEOUT, "OPERATION_TIMEOUT"],
  [ErrorCode.AUTH_FAILED, "AUTH_FAILED"],
]);

/** A DriverError for any failure, keeping libvirt's code, domain and message in the text. */
export function toDriverError(e: unknown, host?: HostId): DriverError {
  if (e instanceof DriverError) return e;
  if (e instanceof LibvirtError) {
    return new DriverError(`${e.message} (libvirt error ${e.code}, domain ${e.domain})`, CODES.get(e.code) ?? `LIBVIRT_${e.code}`, host);
  }
  return new DriverError(e instanceof Error ? e.message : String(e), "DRIVER_ERROR", host);
}
