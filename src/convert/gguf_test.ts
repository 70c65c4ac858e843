import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import {
  findTensor,
  InvalidGgufError,
  metadataArray,
  metadataNumber,
  metadataString,
  parseGguf,
  readGgufFile,
  UnsupportedGgufError,
} from "./gguf.ts";
import { Typed, ValueType, writeGguf } from "./_gguf_writer.ts";
import { SMOLLM2_GGUF, tinyLlamaGguf } from "./_testing.ts";

const haveReal = existsSync(SMOLLM2_GGUF);
if (!haveReal) {
  console.warn(`SKIP: ${SMOLLM2_GGUF} is missing (set SPECTR_SMOLLM2_GGUF); real-file tests ignored`);
}

function sample(version = 3, alignment = 32): Uint8Array {
  return writeGguf({
    version,
    alignment,
    metadata: [
      ["u8", new Typed(ValueType.UINT8, 200)],
      ["i8", new Typed(ValueType.INT8, -100)],
      ["u16", new Typed(ValueType.UINT16, 60000)],
      ["i16", new Typed(ValueType.INT16, -30000)],
      ["u32", 4000000000],
      ["i32", -2000000000],
      ["f32", 0.5],
      ["bool", true],
      ["str", "héllo"],
      ["u64", 2n ** 63n],
      ["i64", -(2n ** 40n)],
      ["f64", new Typed(ValueType.FLOAT64, 1 / 3)],
      ["strings", ["a", "", "ĠParis"]],
      ["ints", new Typed(ValueType.ARRAY, [3, 1, 2], ValueType.INT32)],
      ["nested", new Typed(ValueType.ARRAY, [[1, 2], [3]], ValueType.ARRAY)],
      ["empty", []],
    ],
    tensors: [
      { name: "a", dims: [3], type: 0, data: new Float32Array([1, 2, 3]) },
      { name: "b", dims: [32, 2], type: 8, data: new Float32Array(64).fill(0.25) },
    ],
  });
}

Deno.test("parseGguf reads every metadata value type, arrays included, and the tensor directory", () => {
  const file = parseGguf(sample());
  const m = file.metadata;
  assert.equal(file.version, 3);
  assert.deepEqual(
    [m.get("u8"), m.get("i8"), m.get("u16"), m.get("i16"), m.get("u32"), m.get("i32"), m.get("f32")],
    [200, -100, 60000, -30000, 4000000000, -2000000000, 0.5],
  );
  assert.deepEqual([m.get("bool"), m.get("str"), m.get("u64"), m.get("i64")], [
    true,
    "héllo",
    2n ** 63n,
    -(2n ** 40n),
  ]);
  assert.equal(m.get("f64"), 1 / 3);
  assert.deepEqual(m.get("strings"), ["a", "", "ĠParis"]);
  assert.deepEqual(m.get("ints"), [3, 1, 2]);
  assert.deepEqual(m.get("nested"), [[1, 2], [3]]);
  assert.deepEqual(m.get("empty"), []);
  assert.deepEqual(file.tensors.map((t) => [t.name, t.dims, t.typeName, t.byteLength]), [
    ["a", [3], "F32", 12],
    ["b", [32, 2], "Q8_0", 68],
  ]);
  assert.equal(file.dataOffset % 32, 0);
  assert.equal(file.tensors[0].offset, file.dataOffset);
  assert.equal(file.tensors[1].offset, file.dataOffset + 32);
  assert.equal(metadataString(file, "str"), "héllo");
  assert.equal(metadataNumber(file, "i64"), -(2 ** 40));
  assert.equal(metadataNumber(file, "missing", 7), 7);
  assert.deepEqual(metadataArray(file, "ints"), [3, 1, 2]);
  assert.equal(findTensor(file, "b")?.type, 8);
});

Deno.test("parseGguf reads v2 files and honours general.alignment", () => {
  const file = parseGguf(sample(2, 64));
  assert.equal(file.version, 2);
  assert.equal(file.alignment, 64);
  assert.equal(file.dataOffset % 64, 0);
  assert.equal(file.tensors[1].offset - file.tensors[0].offset, 64);
});

Deno.test("metadata helpers throw InvalidGgufError naming a missing or mistyped key", () => {
  const file = parseGguf(sample());
  assert.throws(
    () => metadataString(file, "nope"),
    (e) => e instanceof InvalidGgufError && /"nope"/.test(e.message),
  );
  assert.throws(
    () => metadataString(file, "u32"),
    (e) => e instanceof InvalidGgufError && /"u32".*string/.test(e.message),
  );
  assert.throws(() => metadataNumber(file, "u64"), InvalidGgufError); // 2^63 is not a safe integer
  assert.throws(() => metadataArray(file, "str"), InvalidGgufError);
});

Deno.test("parseGguf rejects a wrong magic, truncation anywhere, bad value types and unknown tensor types", () => {
  const good = tinyLlamaGguf();
  const bad = (
    bytes: Uint8Array,
    pattern: RegExp,
    type: typeof InvalidGgufError | typeof UnsupportedGgufError = InvalidGgufError,
  ) => assert.throws(() => parseGguf(bytes), (e) => e instanceof type && pattern.test((e as Error).message));
  bad(
    new TextEncoder().encode("GGML" + "\0".repeat(60)),
    /Not a GGUF file: magic bytes are 47 47 4d 4c.*at byte 0/,
  );
  bad(good.subarray(0, 2), /Truncated GGUF: magic/);
  bad(good.subarray(0, 100), /Truncated GGUF.*at byte \d+/);
  const file = parseGguf(good);
  bad(
    good.subarray(0, file.dataOffset + 10),
    /Truncated GGUF: tensor "token_embd.weight" data .* runs past the end/,
  );
  bad(good.subarray(0, good.length - 1), /Truncated GGUF: tensor "output_norm.weight"/);
  const v4 = good.slice();
  new DataView(v4.buffer).setUint32(4, 4, true);
  bad(v4, /GGUF version 4 is not supported/, UnsupportedGgufError);
  // metadata "k" with value type 13 (there is no such type)
  const badType = writeGguf({ metadata: [["k", new Typed(13, 0)]], tensors: [] });
  bad(badType, /Metadata "k" has unknown value type 13 \(at byte 33\)/);
  const unknownTensor = writeGguf({
    metadata: [],
    tensors: [{ name: "w", dims: [4], type: 99, raw: new Uint8Array(4) }],
  });
  bad(unknownTensor, /Tensor "w" has unknown ggml type id 99/, UnsupportedGgufError);
  const badBool = writeGguf({ metadata: [["b", new Typed(ValueType.UINT8, 2)]], tensors: [] });
  new DataView(badBool.buffer).setUint32(33, ValueType.BOOL, true); // retype the value as BOOL
  bad(badBool, /BOOL byte 2/);
  const hugeArray = writeGguf({
    metadata: [["a", new Typed(ValueType.ARRAY, [1], ValueType.UINT32)]],
    tensors: [],
  });
  new DataView(hugeArray.buffer).setBigUint64(41, 2n ** 40n, true); // element count
  bad(hugeArray, /claims 1099511627776 UINT32 elements/);
});

Deno.test({
  name: "parseGguf agrees with @huggingface/gguf on the real SmolLM2 file",
  ignore: !haveReal,
  async fn() {
    const { gguf } = await import("npm:@huggingface/gguf@0.4.6");
    const theirs = await gguf(SMOLLM2_GGUF, { allowLocalFile: true });
    const { file } = await readGgufFile(SMOLLM2_GGUF);
    assert.equal(file.version, Number(theirs.metadata.version));
    assert.equal(file.dataOffset, Number(theirs.tensorDataOffset));
    assert.equal(file.tensors.length, theirs.tensorInfos.length);
    theirs.tensorInfos.forEach((t, i) => {
      const mine = file.tensors[i];
      assert.equal(mine.name, t.name);
      assert.deepEqual(mine.dims, t.shape.map(Number));
      assert.equal(mine.type, t.dtype);
      assert.equal(mine.offset, file.dataOffset + Number(t.offset));
    });
    const meta = theirs.metadata as unknown as Record<string, unknown>;
    const keys = Object.keys(meta).filter((k) => !["version", "tensor_count", "kv_count"].includes(k));
    assert.deepEqual(keys, [...file.metadata.keys()]);
    const norm = (v: unknown) => (typeof v === "bigint" ? Number(v) : v);
    for (const key of keys) {
      const mine = file.metadata.get(key), their = meta[key];
      if (Array.isArray(mine)) assert.deepEqual(mine.map(norm), (their as unknown[]).map(norm), key);
      else assert.equal(norm(mine), norm(their), key);
    }
    assert.equal(metadataString(file, "general.architecture"), "llama");
    assert.equal(metadataNumber(file, "llama.block_count"), 30);
    assert.equal(metadataArray(file, "tokenizer.ggml.tokens").length, 49152);
  },
});
