// adoptImage (file_image.ts): the views a family's reader returns over a file image are settled
// before placement — 8-bit codes re-centred in place (each byte x → x ^ 0x80 = code − 128, once, even
// when one weight is reached twice, as a tied embedding and head are) and recorded by offset, float32
// views recorded as they lie; every other view copied out of the image, so growing the memory later cannot detach it. Expected values
// are written from that definition. Power checks: a weight whose codes are not in the image is left
// alone (its bytes unchanged, not recorded), and overlapping code views are refused rather than
// re-centred twice (which would undo it).
import assert from "node:assert/strict";
import { adoptImage } from "./file_image.ts";

function image(n: number): Uint8Array {
  const buffer = new ArrayBuffer(n + 16);
  const bytes = new Uint8Array(buffer, 16, n); // the image need not start at offset 0
  for (let i = 0; i < n; i++) bytes[i] = (i * 37 + 11) & 0xff;
  return bytes;
}

Deno.test("adoptImage: codes re-centred in place once and recorded by offset; other views copied out", () => {
  const img = image(256);
  const before = img.slice();
  const codes = img.subarray(0, 64), scales = new Float32Array(img.buffer, img.byteOffset + 64, 8);
  const tied = { kind: "q8", k: 32, n: 2, codes, scales: new Float32Array(4) };
  const other = { kind: "q8", k: 32, n: 1, codes: img.subarray(96, 128), scales: new Float32Array(1) };
  const elsewhere = new Uint8Array(32).fill(7);
  const weights = {
    embed: tied,
    head: tied, // the same object twice: re-centred once
    layers: [{
      q: other,
      norm: scales,
      ids: new Uint16Array(img.buffer, img.byteOffset + 128, 16),
      outside: { kind: "q8", codes: elsewhere },
    }],
  };
  const { codes: inPlace, bytes } = adoptImage(weights, img);
  assert.equal(bytes, 64 + 32);
  for (let i = 0; i < 64; i++) assert.equal(img[i], before[i] ^ 0x80, `byte ${i}`);
  for (let i = 96; i < 128; i++) assert.equal(img[i], before[i] ^ 0x80, `byte ${i}`);
  for (let i = 64; i < 96; i++) assert.equal(img[i], before[i], `byte ${i} (not codes) unchanged`);
  assert.equal(inPlace.get(codes), img.byteOffset);
  assert.equal(inPlace.get(other.codes), img.byteOffset + 96);
  // the float32 view is used where it lies (recorded, untouched); another kind of view is copied out
  assert.equal(inPlace.get(scales), img.byteOffset + 64);
  assert.equal(weights.layers[0].norm, scales);
  const ids = weights.layers[0].ids;
  assert.notEqual(ids.buffer, img.buffer);
  assert.deepEqual(new Uint8Array(ids.buffer, ids.byteOffset, 32), before.subarray(128, 160));
  // power: codes outside the image are neither touched nor recorded
  assert.deepEqual(elsewhere, new Uint8Array(32).fill(7));
  assert.equal(inPlace.has(elsewhere), false);
});

Deno.test("adoptImage: two different code views over the same bytes are refused", () => {
  const img = image(128);
  const a = { kind: "q8", codes: img.subarray(0, 64) };
  const b = { kind: "q8", codes: img.subarray(32, 96) };
  assert.throws(() => adoptImage({ a, b }, img), /overlap/);
});
