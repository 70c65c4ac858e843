import assert from "node:assert/strict";
import { deflateRawSync } from "node:zlib";
import { crc32, InvalidZipError, listZip, readZipEntry } from "./zip.ts";

/** A minimal zip writer (stored or deflated entries), independent of the reader under test. */
function makeZip(files: { name: string; data: Uint8Array; deflate: boolean }[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const f of files) {
    const name = enc.encode(f.name);
    const packed = f.deflate ? new Uint8Array(deflateRawSync(f.data)) : f.data;
    const crc = crc32(f.data);
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(8, f.deflate ? 8 : 0, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, packed.length, true);
    lv.setUint32(22, f.data.length, true);
    lv.setUint16(26, name.length, true);
    local.set(name, 30);
    const dir = new Uint8Array(46 + name.length);
    const dv = new DataView(dir.buffer);
    dv.setUint32(0, 0x02014b50, true);
    dv.setUint16(10, f.deflate ? 8 : 0, true);
    dv.setUint32(16, crc, true);
    dv.setUint32(20, packed.length, true);
    dv.setUint32(24, f.data.length, true);
    dv.setUint16(28, name.length, true);
    dv.setUint32(42, offset, true);
    dir.set(name, 46);
    parts.push(local, packed);
    central.push(dir);
    offset += local.length + packed.length;
  }
  const dirSize = central.reduce((n, c) => n + c.length, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, files.length, true);
  ev.setUint16(10, files.length, true);
  ev.setUint32(12, dirSize, true);
  ev.setUint32(16, offset, true);
  const all = [...parts, ...central, eocd];
  const out = new Uint8Array(all.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of all) out.set(p, (at += p.length) - p.length);
  return out;
}

const big = new Uint8Array(100_000).map((_, i) => (i * 7919) % 251);
const zip = makeZip([
  { name: "pkg/data.bin", data: big, deflate: true },
  { name: "pkg/README", data: new TextEncoder().encode("hello"), deflate: false },
]);

Deno.test("readZipEntry returns deflated and stored entries byte for byte", async () => {
  assert.deepEqual(listZip(zip).map((e) => e.name), ["pkg/data.bin", "pkg/README"]);
  assert.deepEqual(await readZipEntry(zip, "pkg/data.bin"), big);
  assert.equal(new TextDecoder().decode(await readZipEntry(zip, "pkg/README")), "hello");
});

Deno.test("a damaged zip is an InvalidZipError naming the problem", async () => {
  await assert.rejects(() => readZipEntry(zip, "pkg/missing"), {
    name: "InvalidZipError",
    message: /no such entry/,
  });
  assert.throws(() => listZip(new Uint8Array(100)), InvalidZipError);
  const flipped = zip.slice();
  flipped[30 + "pkg/data.bin".length + 20] ^= 0xff; // inside the deflated data of the first entry
  await assert.rejects(() => readZipEntry(flipped, "pkg/data.bin"), InvalidZipError);
  const stored = zip.slice();
  const at = zip.length - 22 - 46 * 2 - "pkg/data.bin".length - "pkg/README".length - 5; // "hello"'s first byte
  stored[at] ^= 1;
  await assert.rejects(() => readZipEntry(stored, "pkg/README"), {
    name: "InvalidZipError",
    message: /CRC-32/,
  });
  await assert.rejects(() => readZipEntry(zip.subarray(0, 1000), "pkg/data.bin"), InvalidZipError);
});
