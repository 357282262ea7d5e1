// Keyring files (Ceph's src/auth/KeyRing.cc; the text as `ceph-authtool` writes it): reading,
// writing (mode 0600, atomically) and generating keys. The text format itself is pure and lives
// in machines/keyring-text.ts, where the auth service parses `auth import -i` input too.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { decodeCryptoKey, encodeCryptoKey } from '../machines/crypto-key.ts';
import { formatKeyring, type KeyringEntry, KeyringError, parseKeyring } from '../machines/keyring-text.ts';

export {
  compareEntityNames,
  formatKeyring,
  type KeyringEntry,
  KeyringError,
  parseEntityName,
  parseKeyring,
} from '../machines/keyring-text.ts';

/** Keyring files are small; one larger than this is not a keyring (Ceph's ConfFile allows 1 GiB). */
export const keyringBytesMax = 1 << 20;

/**
 * A new random key's text form (`ceph-authtool --gen-print-key`): 16 random bytes from node's
 * crypto, created `nowMs`.
 *
 * @example
 * generateKey() // 'AQAMsxRr…==' (40 characters)
 */
export function generateKey(nowMs = Date.now()): string {
  return encodeCryptoKey(new Uint8Array(randomBytes(16)), nowMs);
}

/** The secret bytes of an entry's key (or of a key's text form). Throws CryptoKeyError if malformed. */
export function keySecret(entryOrKey: KeyringEntry | string): Uint8Array {
  return decodeCryptoKey(typeof entryOrKey === 'string' ? entryOrKey : entryOrKey.key).secret;
}

/**
 * Read and parse a keyring file. Errors name the path: KeyringError for a malformed file (with
 * the line), and for one that cannot be read (`code` carries the errno name, e.g. ENOENT).
 * A file readable by group or others is read as it is (Ceph does not refuse it either).
 */
export async function readKeyring(path: string): Promise<KeyringEntry[]> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
    throw new KeyringError(`cannot read it: ${(error as Error).message}`, { path, code });
  }
  if (bytes.byteLength > keyringBytesMax) {
    throw new KeyringError(`${bytes.byteLength} bytes is more than a keyring (${keyringBytesMax} at most)`, {
      path,
      code: 'EFBIG',
    });
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new KeyringError('not UTF-8 text', { path });
  }
  try {
    return parseKeyring(text);
  } catch (error) {
    if (!(error instanceof KeyringError)) throw error;
    throw new KeyringError(error.reason, { path, ...(error.line === undefined ? {} : { line: error.line }) });
  }
}

/**
 * Write a keyring file in Ceph's layout, mode 0600: into a temporary file beside it (created
 * 0600, fsynced), renamed over `path`, then the directory fsynced — a crash leaves the old file
 * or the new one, never half a keyring.
 */
export async function writeKeyring(path: string, entries: readonly KeyringEntry[]): Promise<void> {
  const text = formatKeyring(entries);
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const file = await open(temp, 'wx', 0o600);
  try {
    // The mode given to open is masked by the umask; the file must be exactly 0600 whatever it is.
    await file.chmod(0o600);
    await file.writeFile(text);
    await file.sync();
  } catch (error) {
    await file.close();
    await unlink(temp).catch(() => {});
    throw error;
  }
  await file.close();
  try {
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
  const directory = await open(dir, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
