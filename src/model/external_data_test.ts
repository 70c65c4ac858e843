// External data (weights in onnx/model.onnx_data beside a graph-only onnx/model.onnx) from a path,
// a loopback URL and in-memory files, on wasm and cpu: the logits equal those of the same model with
// inline weights (src/model/testdata/external was re-saved from testdata/variants/onnx/model.onnx by
// tools/train/export_external.py, so the two hold the same float32 bytes: bound 0, measured 0).
// The dtype names transformers.js folders use map to their files.
import assert from "node:assert/strict";
import { modelFileName } from "./session.ts";
import { OnnxCausalLM } from "./causal_lm.ts";
import { ModelNotFoundError } from "./errors.ts";
import { externalDataFiles } from "../onnx/mod.ts";
import { granted, maxAbsDiff, randomTokens } from "./_testing.ts";

const EXTERNAL = new URL("./testdata/external/", import.meta.url);
const INLINE = new URL("./testdata/variants/", import.meta.url);
const ffi = granted("ffi", "the cpu (onnxruntime-node) external-data tests");
const net = granted("net", "the URL external-data test");
const BACKENDS = ffi ? (["wasm", "cpu"] as const) : (["wasm"] as const);

async function logits(model: OnnxCausalLM): Promise<Float32Array[]> {
  const prompt = randomTokens(7, model.vocabSize, 3);
  const out = [await model.append([prompt], prompt.length)];
  model.fork(2);
  out.push(await model.append([randomTokens(2, model.vocabSize, 4), randomTokens(2, model.vocabSize, 5)], 2));
  await model.dispose();
  return out;
}

async function files(dir: URL): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const name of ["config.json", "onnx/model.onnx", "onnx/model.onnx_data"]) {
    try {
      out[name] = await Deno.readFile(new URL(name, dir));
    } catch { /* the inline folder has no model.onnx_data */ }
  }
  return out;
}

Deno.test("the graph names its external data file; the inline model names none", async () => {
  assert.deepEqual(externalDataFiles(await Deno.readFile(new URL("onnx/model.onnx", EXTERNAL))), [
    "model.onnx_data",
  ]);
  assert.deepEqual(externalDataFiles(await Deno.readFile(new URL("onnx/model.onnx", INLINE))), []);
  const evil = new TextEncoder().encode("\n\blocation\x12\x0b../x.onnx_d");
  assert.throws(() => externalDataFiles(evil), /outside its folder/);
});

for (const backend of BACKENDS) {
  Deno.test(`${backend}: external data loads from a path and from in-memory files, equal to inline weights`, async () => {
    const reference = await logits(await OnnxCausalLM.load(INLINE, { backend, numThreads: 1 }));
    for (const source of [EXTERNAL.pathname, await files(EXTERNAL)]) {
      const got = await logits(await OnnxCausalLM.load(source, { backend, numThreads: 1 }));
      for (let i = 0; i < got.length; i++) assert.equal(maxAbsDiff(got[i], reference[i]), 0);
    }
  });
}

Deno.test({
  name: "wasm: external data loads from a URL (loopback)",
  ignore: !net,
  async fn() {
    const root = EXTERNAL.pathname;
    const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
      const path = new URL(req.url).pathname;
      try {
        return new Response(await Deno.readFile(root + path.slice(1)));
      } catch {
        return new Response("not found", { status: 404 });
      }
    });
    try {
      const reference = await logits(await OnnxCausalLM.load(INLINE, { backend: "wasm", numThreads: 1 }));
      const url = `http://127.0.0.1:${server.addr.port}/`;
      const got = await logits(await OnnxCausalLM.load(url, { backend: "wasm", numThreads: 1 }));
      for (let i = 0; i < got.length; i++) assert.equal(maxAbsDiff(got[i], reference[i]), 0);
    } finally {
      await server.shutdown();
    }
  },
});

Deno.test("a missing external data file is a ModelNotFoundError naming it", async () => {
  const map = await files(EXTERNAL);
  delete map["onnx/model.onnx_data"];
  await assert.rejects(
    () => OnnxCausalLM.load(map, { backend: "wasm", numThreads: 1 }),
    (e: unknown) => e instanceof ModelNotFoundError && /model\.onnx_data/.test(e.message),
  );
});

Deno.test("dtype names map to the files transformers.js folders use", () => {
  const expected = {
    fp32: "onnx/model.onnx",
    fp16: "onnx/model_fp16.onnx",
    q8: "onnx/model_quantized.onnx",
    quantized: "onnx/model_quantized.onnx",
    int8: "onnx/model_int8.onnx",
    uint8: "onnx/model_uint8.onnx",
    q4: "onnx/model_q4.onnx",
    q4f16: "onnx/model_q4f16.onnx",
    bnb4: "onnx/model_bnb4.onnx",
  } as const;
  for (const [dtype, file] of Object.entries(expected)) {
    assert.equal(modelFileName(dtype as keyof typeof expected), file);
  }
  assert.equal(modelFileName("q4", true), "onnx/decoder_model_merged_q4.onnx");
  assert.throws(() => modelFileName("q3" as never), /dtype must be one of fp32, fp16, q8, quantized/);
});
