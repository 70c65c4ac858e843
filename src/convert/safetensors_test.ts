import assert from "node:assert/strict";
import { parseSafetensors, writeSafetensors } from "./safetensors.ts";

/** A file built by hand (header text, length, raw bytes), not by the writer. */
function handMade(header: string, data: number[]): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

Deno.test("parseSafetensors reads a hand-made file's F32, F16, BF16 and I32 tensors and metadata", () => {
  const bytes = handMade(
    JSON.stringify({
      __metadata__: { format: "pt" },
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      h: { dtype: "F16", shape: [1, 2], data_offsets: [8, 12] },
      b: { dtype: "BF16", shape: [1], data_offsets: [12, 14] },
      i: { dtype: "I32", shape: [2], data_offsets: [14, 22] },
      e: { dtype: "F32", shape: [0, 3], data_offsets: [22, 22] },
    }),
    [
      ...[0x00, 0x00, 0xc0, 0x3f], // 1.5
      ...[0x00, 0x00, 0x00, 0xc0], // -2
      ...[0x00, 0x3c, 0x00, 0xb8], // half 1, -0.5
      ...[0x80, 0x3f], // bf16 1
      ...[0x07, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff], // 7, -1
    ],
  );
  const { metadata, tensors } = parseSafetensors(bytes);
  assert.deepEqual(metadata, { format: "pt" });
  assert.deepEqual([...tensors.keys()], ["a", "h", "b", "i", "e"]);
  assert.deepEqual(tensors.get("a"), { dtype: "F32", shape: [2], data: new Float32Array([1.5, -2]) });
  assert.deepEqual(tensors.get("h"), { dtype: "F16", shape: [1, 2], data: new Float32Array([1, -0.5]) });
  assert.deepEqual(tensors.get("b")!.data, new Float32Array([1]));
  assert.deepEqual(tensors.get("i"), { dtype: "I32", shape: [2], data: new Int32Array([7, -1]) });
  assert.equal(tensors.get("e")!.data.length, 0);
});

Deno.test("writeSafetensors round-trips through parseSafetensors with an 8-byte aligned header", () => {
  const f = Float32Array.from({ length: 12 }, (_, i) => (i - 5) / 3);
  const bytes = writeSafetensors({
    w: { dtype: "F32", shape: [3, 4], data: f },
    h: { dtype: "F16", shape: [12], data: f },
    b: { dtype: "BF16", shape: [12], data: f },
    d2t: { dtype: "I32", shape: [3], data: [0, 5, 2147483647] },
  }, { note: "x" });
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(headerLength % 8, 0);
  const { metadata, tensors } = parseSafetensors(bytes);
  assert.deepEqual(metadata, { note: "x" });
  assert.deepEqual(tensors.get("w")!.data, f);
  assert.deepEqual(tensors.get("w")!.shape, [3, 4]);
  const h = tensors.get("h")!.data, b = tensors.get("b")!.data;
  for (let i = 0; i < 12; i++) {
    assert.ok(Math.abs(h[i] - f[i]) <= Math.abs(f[i]) * 2 ** -11, `F16 ${i}`);
    assert.ok(Math.abs(b[i] - f[i]) <= Math.abs(f[i]) * 2 ** -8, `BF16 ${i}`);
  }
  assert.deepEqual(tensors.get("d2t")!.data, new Int32Array([0, 5, 2147483647]));
});

Deno.test("parseSafetensors rejects truncated and malformed input with typed errors", () => {
  const good = writeSafetensors({ w: { dtype: "F32", shape: [2, 2], data: [1, 2, 3, 4] } });
  const cases: [Uint8Array, ErrorConstructor, RegExp][] = [
    [good.subarray(0, 5), RangeError, /too short/],
    [good.subarray(0, 20), RangeError, /header length \d+ exceeds/],
    [
      good.subarray(0, good.length - 1),
      RangeError,
      /tensor "w" ends at byte 16 of the data, which has only 15 \(truncated\)/,
    ],
    [handMade("{not json", []), TypeError, /not UTF-8 JSON/],
    [handMade("[1, 2]", []), TypeError, /not a JSON object/],
    [
      handMade('{"w": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}', [0, 0, 0, 0, 0, 0, 0, 0]),
      TypeError,
      /dtype F64/,
    ],
    [
      handMade('{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', [0, 0, 0, 0]),
      TypeError,
      /shape \[-1\]/,
    ],
    [
      handMade('{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}', []),
      TypeError,
      /data_offsets \[0\]/,
    ],
    [
      handMade('{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', [0, 0, 0, 0]),
      RangeError,
      /takes 8/,
    ],
    [handMade('{"__metadata__": {"a": 1}}', []), TypeError, /__metadata__.a is not a string/],
  ];
  for (const [bytes, type, message] of cases) {
    assert.throws(() => parseSafetensors(bytes), (e: Error) => {
      assert.ok(e instanceof type, `${e.name}: ${e.message}`);
      assert.match(e.message, /^Cannot read safetensors: /);
      assert.match(e.message, message);
      return true;
    });
  }
  assert.throws(
    () => writeSafetensors({ w: { dtype: "F32", shape: [3], data: [1, 2] } }),
    /Cannot write safetensors: tensor "w" has 2 values for shape \[3\]/,
  );
});
