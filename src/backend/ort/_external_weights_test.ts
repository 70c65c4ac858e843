// Weights by reference (src/onnx/external_data.ts, on the wasm session): the rewritten graph names each large
// initializer's own bytes in the original file (decoded with npm onnx-proto, not with the rewriter's
// reader), leaves everything else as it was, and a wasm session created from it gives bit-identical
// outputs to onnxruntime-web given the file as it is (bound 0: the same kernels on the same weights).
// What makes these fail: an offset or length off by any amount (the referenced bytes differ from
// raw_data), a dropped or altered field (the decoded graphs differ), a graph onnxruntime rejects or
// reads differently (the session throws or the outputs differ), or createOnnxSession no longer
// handing the weights by reference on wasm (weightsByReference undefined).
import assert from "node:assert/strict";
import onnxProto from "npm:onnx-proto@8.0.1";
import { loadOrt, type OrtTensor, type Tensor as SessionTensor } from "../mod.ts";
import { createOnnxSession } from "../../model/session.ts";
import { referenceWeights } from "../../onnx/external_data.ts";
import { openModelFolder } from "../../model/loader.ts";
import { granted, haveModel, modelPath } from "../../model/_testing.ts";

// deno-lint-ignore no-explicit-any
const { onnx } = onnxProto as any;
const VARIANTS = new URL("../../model/testdata/variants/", import.meta.url);
const EXTERNAL = new URL("../../model/testdata/external/onnx/model.onnx", import.meta.url);
const ffi = granted("ffi", "the check that cpu sessions keep their weights inline");

// deno-lint-ignore no-explicit-any
type Tensor = any;

function decode(bytes: Uint8Array) {
  return onnx.ModelProto.decode(bytes);
}

/** A decoded message as a plain object (int64s as strings), without `omit`'s fields. */
function plain(type: Tensor, message: Tensor, ...omit: string[]): Record<string, unknown> {
  const out = type.toObject(message, { longs: String });
  for (const key of omit) delete out[key];
  return out;
}

function entries(t: Tensor): Record<string, string> {
  return Object.fromEntries(
    (t.externalData ?? []).map((e: { key: string; value: string }) => [e.key, e.value]),
  );
}

for (const name of ["model.onnx", "model_fp16.onnx", "model_quantized.onnx", "decoder_model_merged.onnx"]) {
  Deno.test(`referenceWeights: ${name}'s large initializers name their own bytes; the rest is unchanged`, async () => {
    const bytes = await Deno.readFile(new URL(`onnx/${name}`, VARIANTS));
    const out = referenceWeights(bytes, "weights.bin", 1024);
    assert.ok(out, "something to move");
    const before = decode(bytes), after = decode(out.model);
    const inits: Tensor[] = before.graph.initializer, moved: Tensor[] = after.graph.initializer;
    assert.equal(moved.length, inits.length);
    let tensors = 0, total = 0;
    for (const [i, t] of inits.entries()) {
      const m = moved[i];
      if (t.rawData.length < 1024) {
        assert.deepEqual(
          plain(onnx.TensorProto, m),
          plain(onnx.TensorProto, t),
          `${t.name} (small) unchanged`,
        );
        continue;
      }
      assert.equal(m.rawData.length, 0, `${t.name}: raw_data moved out`);
      assert.equal(m.dataLocation, onnx.TensorProto.DataLocation.EXTERNAL);
      const e = entries(m);
      assert.deepEqual(Object.keys(e), ["location", "offset", "length"]);
      assert.equal(e.location, "weights.bin");
      const offset = Number(e.offset), length = Number(e.length);
      assert.equal(length, t.rawData.length);
      assert.deepEqual(bytes.subarray(offset, offset + length), t.rawData, `${t.name}: the referenced bytes`);
      // every other field as it was
      const fields = ["rawData", "externalData", "dataLocation"];
      assert.deepEqual(plain(onnx.TensorProto, m, ...fields), plain(onnx.TensorProto, t, ...fields));
      tensors++;
      total += length;
    }
    assert.deepEqual(out.moved, { tensors, bytes: total });
    assert.ok(tensors > 0);
    // the graph apart from its initializers, and the model apart from its graph, as they were
    assert.deepEqual(
      plain(onnx.GraphProto, after.graph, "initializer"),
      plain(onnx.GraphProto, before.graph, "initializer"),
    );
    assert.deepEqual(plain(onnx.ModelProto, after, "graph"), plain(onnx.ModelProto, before, "graph"));
    assert.ok(out.model.length < bytes.length - total + 200 * tensors, "only the references were added");
  });
}

Deno.test("referenceWeights: nothing to move (weights already external, all small, not a model) gives undefined", async () => {
  assert.equal(referenceWeights(await Deno.readFile(EXTERNAL), "weights.bin"), undefined);
  const inline = await Deno.readFile(new URL("onnx/model.onnx", VARIANTS));
  assert.equal(referenceWeights(inline, "weights.bin", 1 << 30), undefined);
  assert.equal(referenceWeights(new Uint8Array([1, 2, 3]), "weights.bin"), undefined);
  assert.equal(referenceWeights(new Uint8Array(0), "weights.bin"), undefined);
  // a truncated model: a field runs past the end
  assert.equal(referenceWeights(inline.subarray(0, inline.length - 100), "weights.bin"), undefined);
});

/** A one-position forward's feeds for a graph with past_key_values.* inputs (empty past). */
function feeds(session: Awaited<ReturnType<typeof createOnnxSession>>): Record<string, SessionTensor> {
  const out: Record<string, SessionTensor> = {};
  for (const m of session.inputMetadata) {
    if (m.name === "input_ids") {
      out[m.name] = session.tensor("int64", new BigInt64Array([5n, 7n, 11n]), [1, 3]);
    } else if (m.name === "attention_mask") {
      out[m.name] = session.tensor("int64", new BigInt64Array([1n, 1n, 1n]), [1, 3]);
    } else if (m.name === "position_ids") {
      out[m.name] = session.tensor("int64", new BigInt64Array([0n, 1n, 2n]), [1, 3]);
    } else if (m.name === "use_cache_branch") out[m.name] = session.tensor("bool", [false], [1]);
    else if (m.name.startsWith("past_key_values.")) {
      const dims = m.shape!.map((d, i) => (typeof d === "number" ? d : i === 0 ? 1 : 0));
      out[m.name] = m.type === "float16"
        ? session.tensor("float16", new Uint16Array(0), dims)
        : session.tensor("float32", new Float32Array(0), dims);
    } else throw new Error(`unexpected input ${m.name}`);
  }
  return out;
}

const CASES: [string, URL | string, string][] = [
  ["fixture fp32", VARIANTS, "model.onnx"],
  ["fixture fp16", VARIANTS, "model_fp16.onnx"],
  ["fixture q8", VARIANTS, "model_quantized.onnx"],
  ["fixture merged", VARIANTS, "decoder_model_merged.onnx"],
];
if (haveModel("draft")) CASES.push(["bundled draft", modelPath("draft"), "model.onnx"]);
if (haveModel("target")) CASES.push(["bundled target", modelPath("target"), "model.onnx"]);

for (const [label, dir, file] of CASES) {
  Deno.test(`wasm: ${label} by reference gives onnxruntime-web's outputs for the file as is, bit for bit`, async () => {
    const folder = await openModelFolder(dir);
    const session = await createOnnxSession(folder, { backend: "wasm", numThreads: 1, file: `onnx/${file}` });
    const { ort } = await loadOrt("wasm");
    const inline = await ort.InferenceSession.create(await folder.readBytes(`onnx/${file}`), {
      executionProviders: ["wasm"],
    });
    try {
      assert.ok(session.weightsByReference, "the weights went by reference");
      assert.ok(session.weightsByReference.tensors > 0 && session.weightsByReference.bytes > 0);
      const input = feeds(session);
      // the wasm session's tensors are onnxruntime-web's own
      const a = await session.run(input), b = await inline.run(input as Record<string, OrtTensor>);
      assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
      for (const name of Object.keys(b)) {
        assert.deepEqual(a[name].dims, b[name].dims, name);
        assert.deepEqual(a[name].data, b[name].data, `${name}: bit-identical`);
      }
    } finally {
      await session.release();
      await inline.release();
    }
  });
}

Deno.test({
  name: "cpu: sessions keep their weights inline (onnxruntime-node reads the file itself)",
  ignore: !ffi,
  fn: async () => {
    const session = await createOnnxSession(await openModelFolder(VARIANTS), {
      backend: "cpu",
      numThreads: 1,
    });
    assert.equal(session.weightsByReference, undefined);
    await session.release();
  },
});
