// Ceph's error habit: `Error E<CODE>: message` on stderr and the errno as the exit code.
export const errno = {
  EPERM: 1,
  ENOENT: 2,
  ENXIO: 6,
  EIO: 5,
  EAGAIN: 11,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  EADDRINUSE: 98,
  ETIMEDOUT: 110,
  ESHUTDOWN: 108,
} as const;

export type ErrnoName = keyof typeof errno;

export class CliError extends Error {
  constructor(
    readonly code: ErrnoName,
    message: string,
  ) {
    super(message);
  }
  get exitCode(): number {
    return errno[this.code];
  }
}

export const fail = (code: ErrnoName, message: string): never => {
  throw new CliError(code, message);
};

/** The errno name for a negative Ceph return code (r = -errno). */
export function errnoName(r: number): string {
  const found = Object.entries(errno).find(([, n]) => n === -r);
  return found ? found[0] : `E${-r}`;
}

/** A code paxmon exits with (`ENOSPC` from a store error, say), or EIO for any other. */
export function errnoOf(code: unknown): ErrnoName {
  return typeof code === 'string' && code in errno ? (code as ErrnoName) : 'EIO';
}

/** Print and exit for any error: CliError keeps its errno; a store error keeps its code. */
export function exitWithError(error: unknown): never {
  if (error instanceof CliError) {
    process.stderr.write(`Error ${error.code}: ${error.message}\n`);
    process.exit(error.exitCode);
  }
  const code = errnoOf((error as { code?: unknown }).code);
  process.stderr.write(`Error ${code}: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(errno[code]);
}
