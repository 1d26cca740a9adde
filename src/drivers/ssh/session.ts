import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { Duplex } from "node:stream";
import { Client, type ClientChannel, type SFTPWrapper, type Stats } from "ssh2";

/**
 * One long-lived SSH connection to a host, for sampling /proc and for preflight checks. Nothing here
 * runs a shell command: files go over SFTP, reachability tests over direct-tcpip channels (forwardOut).
 */

export interface SshTarget {
  /** Host name for messages (the config's host name). */
  readonly label: string;
  /** Address or DNS name to connect to. */
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly privateKeyFile: string;
  /** Accepted host key fingerprints ("SHA256:…"); anything else is refused, there is no trust on first use. */
  readonly hostKeys: readonly string[];
  readonly keepaliveSec: number;
}

export interface SshSessionOptions {
  /** Time for TCP connect + handshake + auth (default 10 s). */
  readonly readyTimeoutMs?: number;
  /** First reconnect delay after a failure; doubles up to maxBackoffMs (defaults 500 ms / 30 s). */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

/** OpenSSH's fingerprint of a host key blob: "SHA256:" + unpadded base64 of its SHA-256. */
export function fingerprintOf(keyBlob: Buffer): string {
  return "SHA256:" + createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "");
}

export class SshError extends Error {
  constructor(
    message: string,
    readonly target: string,
  ) {
    super(message);
    this.name = "SshError";
  }
}

/** The server showed a host key that is not configured: possibly another machine, never accepted. */
export class HostKeyMismatchError extends SshError {
  constructor(
    target: string,
    readonly seen: string,
    readonly expected: readonly string[],
  ) {
    super(
      `ssh ${target}: host key ${seen} is not one of the configured hostKeys (${expected.join(", ")}); ` +
        "refusing to connect. If the host was reinstalled, check the new key out of band (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on the host) and update the config",
      target,
    );
    this.name = "HostKeyMismatchError";
  }
}

export interface RemoteStat {
  /** Full st_mode (type and permission bits). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly isDirectory: boolean;
}

/** Outcome of a TCP connection attempted by the remote host. */
export type TcpProbe =
  | { readonly result: "open" }
  /** The destination answered with a reset: reachable, but nothing listens there. */
  | { readonly result: "refused"; readonly message: string }
  /** The remote host could not resolve the name. */
  | { readonly result: "unresolved"; readonly message: string }
  | { readonly result: "timeout" }
  | { readonly result: "failed"; readonly message: string };

const SFTP_OPEN_EXCL = "wx";
const CHUNK = 32 * 1024;

function readAt(sftp: SFTPWrapper, handle: Buffer, position: number): Promise<Buffer> {
  const buf = Buffer.alloc(CHUNK);
  return new Promise((resolve, reject) =>
    sftp.read(handle, buf, 0, CHUNK, position, (err, bytes) => {
      // ssh2 reports EOF as an error with code 1 (SSH_FX_EOF).
      if (err && (err as Error & { code?: number }).code !== 1) reject(err);
      else resolve(buf.subarray(0, err ? 0 : bytes));
    }),
  );
}

async function readToEof(sftp: SFTPWrapper, handle: Buffer, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let position = 0;
  for (;;) {
    const [a, b] = await Promise.all([readAt(sftp, handle, position), readAt(sftp, handle, position + CHUNK)]);
    chunks.push(a);
    position += a.length;
    if (position > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
    // A short first chunk is the end only if nothing follows it; otherwise go on from where it stopped.
    if (a.length < CHUNK) {
      if (a.length === 0 || b.length === 0) break;
      continue;
    }
    chunks.push(b);
    position += b.length;
    if (b.length === 0) break;
  }
  return Buffer.concat(chunks);
}

export class SshSession {
  readonly #target: SshTarget;
  readonly #name: string;
  readonly #readyTimeoutMs: number;
  readonly #initialBackoffMs: number;
  readonly #maxBackoffMs: number;
  #client: Client | undefined;
  #sftp: Promise<SFTPWrapper> | undefined;
  /** keepOpen handles, valid for the current SFTP channel only. */
  #openHandles = new Map<string, Buffer>();
  #connecting: Promise<Client> | undefined;
  #backoffMs = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryAt = 0;
  #lastError: Error | undefined;
  #closed = false;
  /** Connections made so far (1 after the first connect; more after reconnects). */
  connects = 0;

  constructor(target: SshTarget, opts: SshSessionOptions = {}) {
    if (target.hostKeys.length === 0) throw new SshError(`ssh ${target.label}: no host keys configured; trust on first use is not supported`, target.label);
    this.#target = target;
    this.#name = `${target.label} (${target.user}@${target.host}:${target.port})`;
    this.#readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
    this.#initialBackoffMs = opts.initialBackoffMs ?? 500;
    this.#maxBackoffMs = opts.maxBackoffMs ?? 30_000;
  }

  get name(): string {
    return this.#name;
  }

  get connected(): boolean {
    return this.#client !== undefined;
  }

  /** Connects now (or returns the live connection); rejects with HostKeyMismatchError, auth or network errors. */
  async connect(): Promise<void> {
    await this.#ready();
  }

  async #ready(): Promise<Client> {
    if (this.#closed) throw new SshError(`ssh ${this.#name}: session closed`, this.#target.label);
    if (this.#client) return this.#client;
    if (this.#connecting) return this.#connecting;
    // Waiting out a back-off: fail fast with the reason instead of blocking the caller for up to maxBackoffMs.
    if (this.#retryTimer && this.#lastError && this.#retryAt > Date.now()) throw this.#lastError;
    return this.#dial();
  }

  #dial(): Promise<Client> {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const attempt = (async (): Promise<Client> => {
      const privateKey = await readFile(this.#target.privateKeyFile).catch((e: Error) => {
        throw new SshError(`ssh ${this.#name}: cannot read private key ${this.#target.privateKeyFile}: ${e.message}`, this.#target.label);
      });
      const client = new Client();
      // ssh2 may emit more than one error (e.g. a failed handshake, then the socket); an unheard one would crash the process.
      client.on("error", () => undefined);
      let seen: string | undefined;
      await new Promise<void>((resolve, reject) => {
        const onError = (e: Error): void => {
          client.removeListener("ready", onReady);
          client.end();
          if (seen !== undefined && !this.#target.hostKeys.includes(seen)) reject(new HostKeyMismatchError(this.#name, seen, this.#target.hostKeys));
          else reject(new SshError(`ssh ${this.#name}: ${e.message}`, this.#target.label));
        };
        const onReady = (): void => {
          client.removeListener("error", onError);
          resolve();
        };
        client.once("ready", onReady);
        client.once("error", onError);
        client.connect({
          host: this.#target.host,
          port: this.#target.port,
          username: this.#target.user,
          privateKey,
          readyTimeout: this.#readyTimeoutMs,
          keepaliveInterval: this.#target.keepaliveSec * 1000,
          keepaliveCountMax: 3,
          hostVerifier: (key: Buffer): boolean => {
            seen = fingerprintOf(key);
            return this.#target.hostKeys.includes(seen);
          },
        });
      });
      // Without this each small request waits for Nagle: ~50 ms instead of ~5 ms per round trip.
      client.setNoDelay(true);
      // Errors after ready (keepalive timeout, reset) are followed by "close".
      client.once("close", () => this.#lost(client));
      return client;
    })();
    this.#connecting = attempt;
    attempt.then(
      (client) => {
        this.#connecting = undefined;
        if (this.#closed) {
          client.end();
          return;
        }
        this.#client = client;
        this.#backoffMs = 0;
        this.#lastError = undefined;
        this.connects++;
      },
      (e: unknown) => {
        this.#connecting = undefined;
        this.#lastError = e instanceof Error ? e : new Error(String(e));
        this.#scheduleRetry();
      },
    );
    return attempt;
  }

  #lost(client: Client): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    this.#sftp = undefined;
    this.#openHandles.clear();
    if (this.#closed) return;
    this.#lastError = new SshError(`ssh ${this.#name}: connection lost`, this.#target.label);
    // Reconnect in the background so the next sample finds a live connection.
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#closed) return;
    const delay = this.#backoffMs;
    this.#retryAt = Date.now() + delay;
    this.#backoffMs = Math.min(this.#maxBackoffMs, Math.max(this.#initialBackoffMs, this.#backoffMs * 2));
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#dial().catch(() => undefined); // the failure is recorded and the next retry scheduled by #dial
    }, delay);
    this.#retryTimer.unref();
  }

  async #sftpChannel(): Promise<SFTPWrapper> {
    const client = await this.#ready();
    if (!this.#sftp) {
      const opening = new Promise<SFTPWrapper>((resolve, reject) => client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp))));
      this.#sftp = opening;
      opening.then(
        (sftp) =>
          sftp.once("close", () => {
            if (this.#sftp !== opening) return;
            this.#sftp = undefined;
            this.#openHandles.clear();
          }),
        () => this.#sftp === opening && (this.#sftp = undefined),
      );
    }
    return this.#sftp;
  }

  #wrap(op: string, path: string, e: unknown): SshError {
    return e instanceof SshError ? e : new SshError(`ssh ${this.#name}: ${op} ${path}: ${(e as Error).message}`, this.#target.label);
  }

  /**
   * Reads a whole file to EOF (works for /proc files, whose size reads as 0). Two chunks are requested at
   * once, so a small file costs one round trip after the open. With keepOpen the handle stays open for the
   * next call (re-reading a /proc file at offset 0 regenerates it): one round trip per sample.
   */
  async readFile(path: string, opts: { maxBytes?: number; keepOpen?: boolean } = {}): Promise<Buffer> {
    const maxBytes = opts.maxBytes ?? 1 << 20;
    try {
      const sftp = await this.#sftpChannel();
      let handle = opts.keepOpen ? this.#openHandles.get(path) : undefined;
      const cached = handle !== undefined;
      handle ??= await new Promise<Buffer>((resolve, reject) => sftp.open(path, "r", (err, h) => (err ? reject(err) : resolve(h))));
      if (opts.keepOpen && !cached) this.#openHandles.set(path, handle);
      try {
        return await readToEof(sftp, handle, maxBytes);
      } catch (e) {
        this.#openHandles.delete(path);
        if (opts.keepOpen) sftp.close(handle, () => undefined);
        throw e;
      } finally {
        if (!opts.keepOpen) sftp.close(handle, () => undefined); // nobody waits for the close
      }
    } catch (e) {
      throw this.#wrap("read", path, e);
    }
  }

  /** Creates a file that must not exist yet (O_EXCL), with the given mode. */
  async writeNewFile(path: string, data: Buffer | string, mode = 0o600): Promise<void> {
    try {
      const sftp = await this.#sftpChannel();
      const handle = await new Promise<Buffer>((resolve, reject) => sftp.open(path, SFTP_OPEN_EXCL, { mode }, (err, h) => (err ? reject(err) : resolve(h))));
      try {
        const buf = Buffer.from(data);
        await new Promise<void>((resolve, reject) => sftp.write(handle, buf, 0, buf.length, 0, (err) => (err ? reject(err) : resolve())));
      } finally {
        await new Promise<void>((resolve) => sftp.close(handle, () => resolve()));
      }
    } catch (e) {
      throw this.#wrap("write", path, e);
    }
  }

  async unlink(path: string): Promise<void> {
    try {
      const sftp = await this.#sftpChannel();
      await new Promise<void>((resolve, reject) => sftp.unlink(path, (err) => (err ? reject(err) : resolve())));
    } catch (e) {
      throw this.#wrap("delete", path, e);
    }
  }

  /** stat(2) of a path on the host (follows symlinks). */
  async stat(path: string): Promise<RemoteStat> {
    try {
      const sftp = await this.#sftpChannel();
      const st = await new Promise<Stats>((resolve, reject) => sftp.stat(path, (err, s) => (err ? reject(err) : resolve(s))));
      return { mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, isDirectory: st.isDirectory() };
    } catch (e) {
      throw this.#wrap("stat", path, e);
    }
  }

  /** A TCP connection made by the host itself (direct-tcpip): the name is resolved there, not here. */
  async openTcp(host: string, port: number, timeoutMs = 5000): Promise<Duplex> {
    const client = await this.#ready();
    return new Promise<Duplex>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(Object.assign(new SshError(`ssh ${this.#name}: connecting to ${host}:${port} from the host timed out after ${timeoutMs} ms`, this.#target.label), { timeout: true }));
      }, timeoutMs);
      client.forwardOut("127.0.0.1", 0, host, port, (err: Error | undefined, stream: ClientChannel) => {
        clearTimeout(timer);
        if (settled) {
          stream?.destroy(); // answered after our timeout: nobody wants it any more
          return;
        }
        settled = true;
        if (err) reject(new SshError(`ssh ${this.#name}: ${host}:${port} from the host: ${err.message.replace(/^\(SSH\) /, "")}`, this.#target.label));
        else resolve(stream);
      });
    });
  }

  /** Tries a TCP connection from the host and says what happened, without sending anything. */
  async probeTcp(host: string, port: number, timeoutMs = 5000): Promise<TcpProbe> {
    let stream: Duplex;
    try {
      stream = await this.openTcp(host, port, timeoutMs);
    } catch (e) {
      if ((e as { timeout?: boolean }).timeout) return { result: "timeout" };
      const message = (e as Error).message;
      if (!(e instanceof SshError) || !/Channel open failure/i.test(message)) throw e;
      // OpenSSH sends getaddrinfo's or connect's error text as the open failure description.
      if (/refused/i.test(message)) return { result: "refused", message };
      if (/name or service|unknown host|not known|no address|temporary failure in name resolution|nodename nor servname/i.test(message)) return { result: "unresolved", message };
      return { result: "failed", message };
    }
    stream.destroy();
    return { result: "open" };
  }

  /**
   * The host key of the SSH server at host:port as reached *from this session's host*: proves which
   * machine a name leads to there. Only the key exchange runs; nothing is authenticated.
   */
  async hostKeyVia(host: string, port: number, timeoutMs = 5000): Promise<string> {
    const stream = await this.openTcp(host, port, timeoutMs);
    const probe = new Client();
    probe.on("error", () => undefined); // see #dial
    try {
      return await new Promise<string>((resolve, reject) => {
        let seen: string | undefined;
        probe.once("error", (e) => (seen !== undefined ? resolve(seen) : reject(new SshError(`ssh ${this.#name}: no SSH server at ${host}:${port}: ${e.message}`, this.#target.label))));
        probe.connect({
          sock: stream,
          username: "ballast-preflight",
          readyTimeout: timeoutMs,
          hostVerifier: (key: Buffer): boolean => {
            seen = fingerprintOf(key);
            return false; // stop right after the key exchange
          },
        });
      });
    } finally {
      probe.end();
      stream.destroy();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    const client = this.#client ?? (await this.#connecting?.catch(() => undefined));
    this.#client = undefined;
    this.#sftp = undefined;
    if (!client) return;
    await new Promise<void>((resolve) => {
      client.once("close", () => resolve());
      client.end();
      setTimeout(resolve, 2000).unref();
    });
  }
}
