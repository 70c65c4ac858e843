/**
 * Reading one file out of a zip archive (a Python wheel is one), with no dependency: the end of
 * central directory record, the central directory entry, the local header, then stored bytes or
 * raw deflate through the runtime's `DecompressionStream`, checked against the entry's CRC-32
 * and size. Zip64 and encrypted archives are refused with a typed error.
 *
 * @module
 */

/** A zip archive that cannot be read: not a zip, truncated, an unsupported feature, or a bad CRC. */
export class InvalidZipError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "InvalidZipError";
  }
}

/** One central-directory entry. */
export interface ZipEntry {
  /** Path inside the archive. */
  name: string;
  /** 0 stored, 8 deflate. */
  method: number;
  /** CRC-32 of the uncompressed bytes. */
  crc32: number;
  /** Compressed size, bytes. */
  compressedSize: number;
  /** Uncompressed size, bytes. */
  size: number;
  /** Offset of the entry's local header. */
  headerOffset: number;
}

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

/**
 * Lists the entries of a zip archive.
 *
 * @throws {InvalidZipError} no end-of-central-directory record, a truncated directory, zip64.
 * @example
 * ```ts ignore
 * import { listZip } from "./zip.ts";
 * const names = listZip(await Deno.readFile("x.whl")).map((e) => e.name);
 * ```
 */
export function listZip(bytes: Uint8Array): ZipEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (view.getUint32(i, true) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new InvalidZipError("Cannot read the zip: no end-of-central-directory record (not a zip?)");
  }
  const count = view.getUint16(eocd + 10, true);
  const dirSize = view.getUint32(eocd + 12, true);
  const dirOffset = view.getUint32(eocd + 16, true);
  if (count === 0xffff || dirOffset === 0xffffffff) {
    throw new InvalidZipError("Cannot read the zip: zip64 archives are not supported");
  }
  if (dirOffset + dirSize > eocd) {
    throw new InvalidZipError(
      `Cannot read the zip: the central directory (${dirOffset}+${dirSize}) is truncated`,
    );
  }
  const entries: ZipEntry[] = [];
  const decoder = new TextDecoder();
  let at = dirOffset;
  for (let i = 0; i < count; i++) {
    if (at + 46 > eocd || view.getUint32(at, true) !== CENTRAL) {
      throw new InvalidZipError(`Cannot read the zip: central directory entry ${i} at byte ${at} is damaged`);
    }
    const flags = view.getUint16(at + 8, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const entry: ZipEntry = {
      name: decoder.decode(bytes.subarray(at + 46, at + 46 + nameLength)),
      method: view.getUint16(at + 10, true),
      crc32: view.getUint32(at + 16, true),
      compressedSize: view.getUint32(at + 20, true),
      size: view.getUint32(at + 24, true),
      headerOffset: view.getUint32(at + 42, true),
    };
    if (flags & 1) throw new InvalidZipError(`Cannot read ${entry.name} from the zip: it is encrypted`);
    entries.push(entry);
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/**
 * The uncompressed bytes of one entry, checked against its size and CRC-32.
 *
 * @param bytes The archive.
 * @param name The entry's path inside it.
 * @returns The file's bytes.
 * @throws {InvalidZipError} no such entry, an unsupported method, truncated data, a size or CRC
 *   mismatch.
 */
export async function readZipEntry(bytes: Uint8Array, name: string): Promise<Uint8Array> {
  const entry = listZip(bytes).find((e) => e.name === name);
  if (!entry) throw new InvalidZipError(`Cannot read ${name} from the zip: no such entry`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = entry.headerOffset;
  if (h + 30 > bytes.length || view.getUint32(h, true) !== LOCAL) {
    throw new InvalidZipError(`Cannot read ${name} from the zip: its local header at byte ${h} is damaged`);
  }
  const start = h + 30 + view.getUint16(h + 26, true) + view.getUint16(h + 28, true);
  if (start + entry.compressedSize > bytes.length) {
    throw new InvalidZipError(`Cannot read ${name} from the zip: its data is truncated`);
  }
  const packed = bytes.subarray(start, start + entry.compressedSize);
  let data: Uint8Array;
  if (entry.method === 0) data = packed;
  else if (entry.method === 8) {
    const stream = new Blob([packed as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
      new DecompressionStream("deflate-raw"),
    );
    try {
      data = new Uint8Array(await new Response(stream).arrayBuffer());
    } catch (cause) {
      throw new InvalidZipError(`Cannot read ${name} from the zip: bad deflate data (${cause})`);
    }
  } else {
    throw new InvalidZipError(
      `Cannot read ${name} from the zip: compression method ${entry.method} is not supported`,
    );
  }
  if (data.length !== entry.size) {
    throw new InvalidZipError(
      `Cannot read ${name} from the zip: ${data.length} bytes, the directory says ${entry.size}`,
    );
  }
  const crc = crc32(data);
  if (crc !== entry.crc32) {
    throw new InvalidZipError(
      `Cannot read ${name} from the zip: CRC-32 ${crc.toString(16)}, the directory says ${
        entry.crc32.toString(16)
      }`,
    );
  }
  return data;
}

let table: Uint32Array | undefined;

/**
 * CRC-32 (IEEE 802.3, as zip uses it).
 *
 * @example
 * ```ts
 * import { crc32 } from "./zip.ts";
 * import assert from "node:assert/strict";
 * assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
 * ```
 */
export function crc32(data: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
