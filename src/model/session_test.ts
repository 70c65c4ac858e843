import assert from "node:assert/strict";
import { loadOrt } from "../backend/mod.ts";
import { createOnnxSession, modelFileName } from "./session.ts";
import { InvalidModelError, ModelNotFoundError } from "./errors.ts";
import { openModelFolder } from "./loader.ts";
import { granted, haveModel, modelPath } from "./_testing.ts";

Deno.test("dtype and merged pick the Optimum file names", () => {
  assert.equal(modelFileName("fp32"), "onnx/model.onnx");
  assert.equal(modelFileName("fp16"), "onnx/model_fp16.onnx");
  assert.equal(modelFileName("q8"), "onnx/model_quantized.onnx");
  assert.equal(modelFileName("fp32", true), "onnx/decoder_model_merged.onnx");
  // deno-lint-ignore no-explicit-any
  assert.throws(
    () => modelFileName("bf16" as any),
    /dtype must be one of fp32, fp16, q8, quantized, int8, uint8, q4, q4f16, bnb4, got "bf16"/,
  );
});

Deno.test("Without merged, the merged decoder is used only when the plain file is missing", async () => {
  const bad = new Uint8Array([1, 2, 3]);
  const onlyMerged = await openModelFolder({ "onnx/decoder_model_merged.onnx": bad });
  await assert.rejects(
    () => createOnnxSession(onlyMerged, { backend: "wasm" }),
    /decoder_model_merged\.onnx/,
  );
  await assert.rejects(
    () => createOnnxSession(onlyMerged, { backend: "wasm", merged: false }),
    (e: Error) => e instanceof ModelNotFoundError && /onnx\/model\.onnx/.test(e.message),
  );
  const both = await openModelFolder({ "onnx/model.onnx": bad, "onnx/decoder_model_merged.onnx": bad });
  await assert.rejects(
    () => createOnnxSession(both, { backend: "wasm" }),
    (e: Error) => e instanceof InvalidModelError && /Cannot load onnx\/model\.onnx/.test(e.message),
  );
  await assert.rejects(
    () => createOnnxSession(both, { backend: "wasm", merged: true }),
    /decoder_model_merged/,
  );
});

const ffi = Deno.permissions.querySync({ name: "ffi" }).state === "granted";

Deno.test(`auto resolves to ${ffi ? "cpu where onnxruntime-node loads" : "wasm where onnxruntime-node cannot load (no --allow-ffi)"}`, async () => {
  const { backend } = await loadOrt("auto");
  assert.equal(backend, ffi ? "cpu" : "wasm");
  if (!ffi) {
    await assert.rejects(
      () => loadOrt("cpu"),
      (e: Error) => e.name === "BackendUnavailableError" && /onnxruntime-node does not load/.test(e.message),
    );
  }
  granted("ffi", "the cpu backend (onnxruntime-node)");
});

Deno.test({
  name: "A session reports the graph's names and metadata and serialises concurrent runs",
  ignore: !haveModel("draft"),
  async fn() {
    const session = await createOnnxSession(await openModelFolder(modelPath("draft")), {
      backend: "wasm",
      numThreads: 1,
    });
    const config = JSON.parse(await Deno.readTextFile(`${modelPath("draft")}/config.json`));
    const { num_hidden_layers: layers, num_key_value_heads: kvHeads, head_dim: headDim } = config;
    try {
      assert.equal(session.file, "onnx/model.onnx");
      assert.ok(session.inputNames.includes(`past_key_values.${layers - 1}.value`));
      assert.deepEqual(session.input("past_key_values.0.key")?.shape?.[1], kvHeads);
      const feeds = () => {
        const f: Record<string, ReturnType<typeof session.tensor>> = {
          input_ids: session.tensor("int64", new BigInt64Array([5n]), [1, 1]),
          attention_mask: session.tensor("int64", new BigInt64Array([1n]), [1, 1]),
          position_ids: session.tensor("int64", new BigInt64Array([0n]), [1, 1]),
        };
        for (let i = 0; i < layers; i++) {
          for (const kv of ["key", "value"]) {
            f[`past_key_values.${i}.${kv}`] = session.tensor("float32", new Float32Array(0), [
              1,
              kvHeads,
              0,
              headDim,
            ]);
          }
        }
        return f;
      };
      // onnxruntime rejects concurrent runs on one session; the queue makes these succeed
      const outs = await Promise.all([0, 1, 2, 3].map(() => session.run(feeds())));
      assert.deepEqual(outs[3].logits.data, outs[0].logits.data);
    } finally {
      await session.release();
    }
    await assert.rejects(() => session.run({}), /released/);
  },
});

Deno.test({
  name: "a wasm runtime that cannot be found is a BackendUnavailableError, not a model error",
  ignore: Deno.permissions.querySync({ name: "run", command: Deno.execPath() }).state !== "granted",
  async fn() {
    // wasmPaths is process-wide and fixed by the first wasm session: run it in a fresh process.
    const backend = new URL("./session.ts", import.meta.url).href;
    const config = new URL("../../deno.json", import.meta.url).pathname;
    const model = new URL("../../models/draft/", import.meta.url).href;
    const script = `
      import { createOnnxSession } from "${backend}";
      import { openModelFolder } from "${new URL("./loader.ts", import.meta.url).href}";
      try {
        await createOnnxSession(await openModelFolder(new URL("${model}")), {
          backend: "wasm", numThreads: 1, wasmPaths: "file:///nonexistent-spectr-dir/",
        });
        console.log("created");
      } catch (e) { console.log(e.name); }`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--config", config, script],
      stdout: "piped",
      stderr: "null",
    }).output();
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "BackendUnavailableError");
  },
});
