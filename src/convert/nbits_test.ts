import assert from "node:assert/strict";
import { dequantize } from "./dequant.ts";
import { GgmlType, ggmlTypeInfo } from "./ggml_types.ts";
import type { GgufTensorInfo } from "./gguf.ts";
import { hfRowOrder } from "./llama_spec.ts";
import { concatNBits, type NBitsWeight, toNBits, toNBits8 } from "./nbits.ts";
import { quantize } from "./_quantize.ts";
import { gaussian } from "./_testing.ts";

/** MatMulNBits' dequantization as its spec states it: (code − zero_point) · scale, codes low nibble first. */
function specDequant(w: NBitsWeight): Float32Array {
  const blocks = w.k / 32, out = new Float32Array(w.n * w.k);
  for (let r = 0; r < w.n; r++) {
    for (let b = 0; b < blocks; b++) {
      const s = r * blocks + b;
      let zp = 2 ** (w.bits - 1);
      if (w.zeroPoints instanceof Float32Array) zp = w.zeroPoints[s];
      else if (w.zeroPoints) {
        const byte = w.zeroPoints[r * Math.ceil(blocks / 2) + (b >> 1)];
        zp = b & 1 ? byte >> 4 : byte & 15;
      }
      for (let e = 0; e < 32; e++) {
        const code = w.bits === 8 ? w.b[s * 32 + e] : (w.b[s * 16 + (e >> 1)] >> (4 * (e & 1))) & 15;
        const min = w.mins ? w.mins[b * w.n + r] : 0;
        out[r * w.k + b * 32 + e] = (code - zp) * w.scales[s] + min;
      }
    }
  }
  return out;
}

function matrix(
  type: number,
  k: number,
  n: number,
  seed: number,
): { bytes: Uint8Array; tensor: GgufTensorInfo } {
  const r = gaussian(seed);
  const bytes = quantize(Float32Array.from({ length: k * n }, () => r() + 0.3), type);
  return {
    bytes,
    tensor: {
      name: "w",
      dims: [k, n],
      type,
      typeName: ggmlTypeInfo(type)!.name,
      offset: 0,
      byteLength: bytes.length,
    },
  };
}

for (
  const [type, mode] of [[GgmlType.Q4_0, "float"], [GgmlType.Q4_1, "float"], [GgmlType.Q4_1, "split"], [
    GgmlType.Q8_0,
    "float",
  ]] as const
) {
  Deno.test(`toNBits maps ${ggmlTypeInfo(type)!.name} (${mode}) onto MatMulNBits without re-quantising, rows reordered`, () => {
    const { bytes, tensor } = matrix(type, 96, 16, type);
    const order = hfRowOrder(2, 8);
    const w = toNBits(bytes, tensor, order, mode);
    const ref = dequantize(bytes, tensor);
    const got = specDequant(w);
    let worst = 0;
    for (let r = 0; r < 16; r++) {
      for (let c = 0; c < 96; c++) {
        worst = Math.max(worst, Math.abs(got[r * 96 + c] - ref[order[r] * 96 + c]));
      }
    }
    // Q4_0 / Q8_0 / split: bit-exact; float zero points: x = (q + m/d)·d, float32 rounding only
    assert.ok(worst <= (type === GgmlType.Q4_1 && mode === "float" ? 1e-6 : 0), `max diff ${worst}`);
  });
}

Deno.test("toNBits keeps a Q4_1 block with d = 0 exact (all elements m)", () => {
  const raw = new Uint8Array(20);
  new DataView(raw.buffer).setUint16(2, 0x3a00, true); // m = 0.75, d = 0
  raw.fill(0x5a, 4); // nibbles that must not matter
  const tensor: GgufTensorInfo = {
    name: "w",
    dims: [32, 1],
    type: GgmlType.Q4_1,
    typeName: "Q4_1",
    offset: 0,
    byteLength: 20,
  };
  assert.deepEqual([...dequantize(raw, tensor)], new Array(32).fill(0.75));
  for (const mode of ["float", "split"] as const) {
    assert.deepEqual([...specDequant(toNBits(raw, tensor, undefined, mode))], new Array(32).fill(0.75));
  }
});

Deno.test("concatNBits stacks weights along N (fused projections)", () => {
  for (const mode of ["float", "split"] as const) {
    const a = matrix(GgmlType.Q4_1, 64, 4, 1), b = matrix(GgmlType.Q4_1, 64, 6, 2);
    const wa = toNBits(a.bytes, a.tensor, undefined, mode), wb = toNBits(b.bytes, b.tensor, undefined, mode);
    const both = specDequant(concatNBits([wa, wb]));
    assert.deepEqual([...both], [...specDequant(wa), ...specDequant(wb)]);
  }
  const q8 = matrix(GgmlType.Q8_0, 32, 2, 3), q4 = matrix(GgmlType.Q4_1, 32, 2, 4);
  assert.throws(() => concatNBits([toNBits(q8.bytes, q8.tensor), toNBits(q4.bytes, q4.tensor)]), RangeError);
});

for (const type of [GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1]) {
  Deno.test(`toNBits8 maps ${ggmlTypeInfo(type)!.name} onto 8-bit MatMulNBits codes (zero point 128) bit-exactly, rows reordered`, () => {
    const { bytes, tensor } = matrix(type, 96, 16, 40 + type);
    const order = hfRowOrder(2, 8);
    const w = toNBits8(bytes, tensor, order);
    assert.equal(w.bits, 8);
    assert.equal(w.zeroPoints, undefined);
    assert.equal(w.mins !== undefined, type === GgmlType.Q4_1);
    const ref = dequantize(bytes, tensor), got = specDequant(w);
    for (let r = 0; r < 16; r++) {
      for (let c = 0; c < 96; c++) {
        assert.ok(got[r * 96 + c] === ref[order[r] * 96 + c], `row ${r} col ${c}`); // 0 === −0
      }
    }
    if (type === GgmlType.Q4_1) {
      // centred: the codes straddle 128 (what an int8 activation path multiplies), residuals < d
      let below = 0;
      for (const code of w.b) if (code < 128) below++;
      assert.ok(
        below > w.b.length / 4 && below < (3 * w.b.length) / 4,
        `${below} of ${w.b.length} codes below 128`,
      );
      for (let i = 0; i < w.mins!.length; i++) {
        const blk = Math.floor(i / 16), r = i % 16;
        assert.ok(Math.abs(w.mins![i]) <= w.scales[r * 3 + blk] / 2 + 1e-12, `residual ${w.mins![i]}`);
      }
    }
  });
}

Deno.test("toNBits8 keeps Q4_1 blocks exact when d = 0 or m − z·d is not a float32 (codes uncentred)", () => {
  const raw = new Uint8Array(40);
  const view = new DataView(raw.buffer);
  view.setUint16(2, 0x3a00, true); // block 0: d = 0, m = 0.75
  raw.fill(0x5a, 4, 20);
  view.setUint16(20, 0x0001, true); // block 1: d = 2^-24 (smallest half), m = 1000: m − 112·d needs 34 bits
  view.setUint16(22, 0x63d0, true);
  raw.fill(0xf0, 24, 40);
  const tensor: GgufTensorInfo = {
    name: "w",
    dims: [32, 2],
    type: GgmlType.Q4_1,
    typeName: "Q4_1",
    offset: 0,
    byteLength: 40,
  };
  const w = toNBits8(raw, tensor);
  assert.deepEqual([...specDequant(w)], [...dequantize(raw, tensor)]);
  assert.deepEqual([...w.mins!], [0.75, 1000]); // the whole minimum, codes q + 128
  assert.deepEqual([w.b[32], w.b[48]], [128, 128 + 15]); // low nibbles 0, high nibbles 15
});

Deno.test("concatNBits stacks 8-bit weights with their Q4_1 residuals", () => {
  const a = matrix(GgmlType.Q4_1, 64, 4, 5), b = matrix(GgmlType.Q4_1, 64, 6, 6);
  const wa = toNBits8(a.bytes, a.tensor), wb = toNBits8(b.bytes, b.tensor);
  assert.deepEqual([...specDequant(concatNBits([wa, wb]))], [...specDequant(wa), ...specDequant(wb)]);
  const q8 = matrix(GgmlType.Q8_0, 32, 2, 7);
  assert.throws(() => concatNBits([toNBits8(q8.bytes, q8.tensor), wa]), RangeError);
});
