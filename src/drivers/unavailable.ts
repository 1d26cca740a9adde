/** A configured driver cannot run on this machine or build (exit 69 from the CLI, with what to install). */
export class DriverUnavailableError extends Error {
  override readonly name = "DriverUnavailableError";
}
