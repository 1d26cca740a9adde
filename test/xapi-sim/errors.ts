/** An XAPI error as the wire carries it: a code from XAPI's Api_errors plus string parameters. */
export class XapiFault extends Error {
  readonly params: readonly string[];

  constructor(
    readonly code: string,
    params: readonly string[] = [],
  ) {
    super(`${code}(${params.join(", ")})`);
    this.params = params;
  }
}

/** Constructors for the codes the simulator raises, with XAPI's parameter order. */
export const fault = {
  authFailed: (user: string) => new XapiFault("SESSION_AUTHENTICATION_FAILED", [user, "Authentication failure"]),
  sessionInvalid: (session: string) => new XapiFault("SESSION_INVALID", [session]),
  handleInvalid: (cls: string, ref: string) => new XapiFault("HANDLE_INVALID", [cls, ref]),
  methodUnknown: (method: string) => new XapiFault("MESSAGE_METHOD_UNKNOWN", [method]),
  paramCount: (method: string, expected: number, got: number) =>
    new XapiFault("MESSAGE_PARAMETER_COUNT_MISMATCH", [method, String(expected), String(got)]),
  hostIsSlave: (masterAddress: string) => new XapiFault("HOST_IS_SLAVE", [masterAddress]),
  badPowerState: (vm: string, expected: string, actual: string) =>
    new XapiFault("VM_BAD_POWER_STATE", [vm, expected, actual]),
  notEnoughMemory: (neededBytes: bigint, availableBytes: bigint) =>
    new XapiFault("HOST_NOT_ENOUGH_FREE_MEMORY", [String(neededBytes), String(availableBytes)]),
  requiresSr: (vm: string, sr: string) => new XapiFault("VM_REQUIRES_SR", [vm, sr]),
  vdiNotInMap: (vdi: string) => new XapiFault("VDI_NOT_IN_MAP", [vdi]),
  vifNotInMap: (vif: string) => new XapiFault("VIF_NOT_IN_MAP", [vif]),
  hostDisabled: (host: string) => new XapiFault("HOST_DISABLED", [host]),
  taskCancelled: (task: string) => new XapiFault("TASK_CANCELLED", [task]),
  otherOperationInProgress: (cls: string, ref: string) => new XapiFault("OTHER_OPERATION_IN_PROGRESS", [cls, ref]),
  tokenParse: (token: string) => new XapiFault("EVENT_FROM_TOKEN_PARSE_FAILURE", [token]),
  operationNotAllowed: (reason: string) => new XapiFault("OPERATION_NOT_ALLOWED", [reason]),
  invalidValue: (field: string, value: string) => new XapiFault("INVALID_VALUE", [field, value]),
  internal: (reason: string) => new XapiFault("INTERNAL_ERROR", [reason]),
};

/** A simulator bug surfaces as XAPI's INTERNAL_ERROR instead of an unhandled rejection. */
export const asFault = (e: unknown): XapiFault => (e instanceof XapiFault ? e : fault.internal(String(e)));
