import assert from "node:assert/strict";
import { dequantize, halfToFloat } from "./dequant.ts";
import { GgmlType } from "./ggml_types.ts";
import { type GgufTensorInfo, UnsupportedGgufError } from "./gguf.ts";
import { floatToBf16, floatToHalf, quantize } from "./_quantize.ts";
import { gaussian } from "./_testing.ts";

function info(type: number, dims: number[], byteLength: number, name = "w"): GgufTensorInfo {
  return { name, dims, type, typeName: String(type), offset: 0, byteLength };
}

function block(bytes: number[]): Uint8Array {
  return new Uint8Array(bytes);
}

Deno.test("dequantize Q4_1: x = d·q + m, low nibbles are elements 0..15, high nibbles 16..31", () => {
  // d = 0.5 (f16 0x3800), m = −1 (0xbc00), byte j = j | (15 − j) << 4
  const qs = Array.from({ length: 16 }, (_, j) => j | ((15 - j) << 4));
  const out = dequantize(block([0x00, 0x38, 0x00, 0xbc, ...qs]), info(GgmlType.Q4_1, [32], 20));
  const want = [
    ...Array.from({ length: 16 }, (_, j) => 0.5 * j - 1),
    ...Array.from({ length: 16 }, (_, j) => 0.5 * (15 - j) - 1),
  ];
  assert.deepEqual([...out], want);
});

Deno.test("dequantize Q4_0 (d·(q − 8)), Q8_0 (d·q), F16, BF16 and F32 blocks", () => {
  const q40 = dequantize(
    block([0x00, 0x40, ...Array.from({ length: 16 }, (_, j) => j | (j << 4))]),
    info(GgmlType.Q4_0, [32], 18),
  );
  assert.deepEqual([...q40], [
    ...Array.from({ length: 16 }, (_, j) => 2 * (j - 8)),
    ...Array.from({ length: 16 }, (_, j) => 2 * (j - 8)),
  ]);
  const q80 = dequantize(
    block([0x00, 0x34, ...Array.from({ length: 32 }, (_, j) => (j - 16) & 0xff)]),
    info(GgmlType.Q8_0, [32], 34),
  );
  assert.deepEqual([...q80], Array.from({ length: 32 }, (_, j) => 0.25 * (j - 16)));
  const f16 = dequantize(
    new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001]).buffer),
    info(GgmlType.F16, [4], 8),
  );
  assert.deepEqual([...f16], [1, -2, 65504, 2 ** -24]);
  const bf16 = dequantize(
    new Uint8Array(new Uint16Array([0x3f80, 0xc040]).buffer),
    info(GgmlType.BF16, [2], 4),
  );
  assert.deepEqual([...bf16], [1, -3]);
  const f32 = dequantize(new Uint8Array(new Float32Array([0.1, -7]).buffer), info(GgmlType.F32, [2], 8));
  assert.deepEqual([...f32], [Math.fround(0.1), -7]);
  // a tensor that starts inside a larger buffer, at an odd offset
  const shifted = new Uint8Array(3 + 34);
  shifted.set([0x00, 0x34, ...Array.from({ length: 32 }, () => 4)], 3);
  assert.deepEqual(
    [...dequantize(shifted, { ...info(GgmlType.Q8_0, [32], 34), offset: 3 })],
    new Array(32).fill(1),
  );
});

Deno.test("half and bfloat16 rounding round-trip through halfToFloat", () => {
  for (let h = 0; h < 65536; h += 7) {
    const x = halfToFloat(h);
    if (Number.isNaN(x)) continue;
    assert.equal(floatToHalf(x), h, `half ${h.toString(16)}`);
  }
  assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00); // tie → even
  assert.equal(floatToHalf(1e6), 0x7c00);
  assert.equal(floatToBf16(1), 0x3f80);
});

Deno.test("quantize → dequantize stays within each type's rounding error", () => {
  const r = gaussian(3);
  const x = Float32Array.from({ length: 32 * 64 }, () => r());
  for (
    const [type, size] of [[GgmlType.Q8_0, 34], [GgmlType.Q4_0, 18], [GgmlType.Q4_1, 20], [GgmlType.F16, 64]]
  ) {
    const bytes = quantize(x, type);
    const y = dequantize(bytes, info(type, [x.length], bytes.length));
    for (let b = 0; b < x.length / 32; b++) {
      const v = x.subarray(b * 32, b * 32 + 32);
      const amax = Math.max(...v.map(Math.abs)), lo = Math.min(...v), hi = Math.max(...v);
      const bound = type === GgmlType.Q8_0
        ? amax / 127 * 0.51
        : type === GgmlType.Q4_0
        ? amax / 8 * 1.01
        : type === GgmlType.Q4_1
        ? (hi - lo) / 15 * 0.51 + Math.abs(lo) * 1e-3
        : 0;
      for (let j = 0; j < 32; j++) {
        assert.ok(
          Math.abs(y[b * 32 + j] - v[j]) <= bound + amax * 1e-3 + 1e-6,
          `type ${type} block ${b}: ${y[b * 32 + j]} vs ${v[j]}`,
        );
      }
    }
    assert.equal(bytes.length, (x.length / 32) * size);
  }
});

Deno.test("dequantize names the unsupported type and the tensor", () => {
  assert.throws(
    () =>
      dequantize(new Uint8Array(144), {
        name: "blk.3.ffn_down.weight",
        dims: [256],
        type: 12,
        typeName: "Q4_K",
        offset: 0,
        byteLength: 144,
      }),
    (e) => e instanceof UnsupportedGgufError && /"blk\.3\.ffn_down\.weight".*Q4_K/.test(e.message),
  );
});
