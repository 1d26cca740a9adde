/** The part of unix-dgram 2.x (AF_UNIX SOCK_DGRAM for Node) that src/daemon/notify.ts uses. */
declare module "unix-dgram" {
  import type { EventEmitter } from "node:events";

  export interface UnixDgramSocket extends EventEmitter {
    /** The raw file descriptor (-1 once closed). */
    fd: number;
    /** Set by connect(); send() then ignores its path argument. */
    connected?: boolean;
    bind(path: string): void;
    connect(path: string): void;
    /** Connected socket: send(buf, callback). */
    send(buf: Buffer, callback?: (err?: Error & { code?: number }) => void): void;
    send(buf: Buffer, offset: number, length: number, path: string, callback?: (err?: Error & { code?: number }) => void): void;
    close(): void;
  }

  export function createSocket(type: "unix_dgram", listener?: (msg: Buffer, rinfo: { size: number; path?: string }) => void): UnixDgramSocket;

  const unixDgram: { createSocket: typeof createSocket };
  export default unixDgram;
}
