// Ceph's CryptoKey as it appears in a keyring (`key = AQ…==`): base64 of a 28-byte blob, the
// encoding of src/auth/Crypto.cc CryptoKey::encode — u16 type (1 = AES), utime_t created (u32
// seconds, u32 nanoseconds), u16 secret length, then the secret (16 bytes for the keys Ceph makes).
// All integers little-endian, as Ceph's encode() writes them. paxmon keeps Ceph's text form so a
// Ceph operator's keyrings and `ceph-authtool --gen-print-key` keys read the same; the secret is
// what paxmon's handshake uses (transport/session-crypto.ts, HMAC and HKDF from node's crypto).
//
// Pure (no node:*): the auth service in machines/ encodes keys from random bytes the runtime
// provides; actors/keyring.ts reads and writes keyring files.

/** CEPH_CRYPTO_AES, the only key type Ceph generates. */
export const cryptoKeyTypeAes = 1;
/** Bytes of secret in a key paxmon generates (Ceph's AES keys: 16). */
export const cryptoKeySecretBytes = 16;
const headerBytes = 2 + 4 + 4 + 2;

export class CryptoKeyError extends Error {
  override name = 'CryptoKeyError';
}

function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array {
  // atob accepts whitespace and missing padding; a key is one token, so be strict first.
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new CryptoKeyError('key is not base64');
  }
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * A key's text form from its secret and creation time (CryptoKey::encode, then base64).
 *
 * @example
 * encodeCryptoKey(new Uint8Array(16), 0) // 'AQAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAAAA'... (28 bytes → 40 chars)
 */
export function encodeCryptoKey(secret: Uint8Array, createdMs: number): string {
  if (secret.byteLength < cryptoKeySecretBytes || secret.byteLength > 0xffff) {
    throw new CryptoKeyError(`a secret is ${cryptoKeySecretBytes}…65535 bytes, not ${secret.byteLength}`);
  }
  const blob = new Uint8Array(headerBytes + secret.byteLength);
  const view = new DataView(blob.buffer);
  const seconds = Math.floor(createdMs / 1000);
  view.setUint16(0, cryptoKeyTypeAes, true);
  view.setUint32(2, seconds >>> 0, true);
  view.setUint32(6, Math.floor((createdMs - seconds * 1000) * 1e6) >>> 0, true);
  view.setUint16(10, secret.byteLength, true);
  blob.set(secret, headerBytes);
  return toBase64(blob);
}

/** The secret and creation time in a key's text form; CryptoKeyError if it is not a Ceph AES key. */
export function decodeCryptoKey(text: string): { secret: Uint8Array; createdMs: number } {
  const blob = fromBase64(text.trim());
  if (blob.byteLength < headerBytes) throw new CryptoKeyError('key is too short');
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const type = view.getUint16(0, true);
  if (type !== cryptoKeyTypeAes) throw new CryptoKeyError(`key type ${type} is not AES (1)`);
  const length = view.getUint16(10, true);
  if (length !== blob.byteLength - headerBytes) {
    throw new CryptoKeyError(`key says ${length} secret bytes but holds ${blob.byteLength - headerBytes}`);
  }
  if (length < cryptoKeySecretBytes) throw new CryptoKeyError(`a ${length}-byte secret is too short`);
  const createdMs = view.getUint32(2, true) * 1000 + Math.floor(view.getUint32(6, true) / 1e6);
  return { secret: blob.slice(headerBytes), createdMs };
}

/** Whether `text` is a well-formed key (for validating `auth add`/`auth import` input and keyrings). */
export function isCryptoKey(text: string): boolean {
  try {
    decodeCryptoKey(text);
    return true;
  } catch {
    return false;
  }
}
