import assert from "node:assert/strict";
import { SpeculativeGenerator } from "./generator.ts";
import { ModelNotFoundError } from "../model/errors.ts";
import { haveModel, modelPath } from "../model/_testing.ts";

const ready = haveModel("target") && haveModel("draft");

async function folderFiles(path: string): Promise<Record<string, Uint8Array>> {
  const files: Record<string, Uint8Array> = {};
  for (
    const name of [
      "config.json",
      "generation_config.json",
      "tokenizer.json",
      "tokenizer_config.json",
      "onnx/model.onnx",
    ]
  ) {
    files[name] = await Deno.readFile(`${path}/${name}`);
  }
  return files;
}

Deno.test({
  name:
    "fromPretrained loads the bundled pair from in-memory files and rejects a draft with another vocabulary",
  ignore: !ready,
  async fn() {
    const target = await folderFiles(modelPath("target"));
    const draft = await folderFiles(modelPath("draft"));
    const generator = await SpeculativeGenerator.fromPretrained({ target, draft, backend: "wasm" });
    const greedy = await generator.generate("Once upon a time", {
      method: "autoregressive",
      temperature: 0,
      maxNewTokens: 8,
    });
    const spectr = await generator.generate("Once upon a time", {
      temperature: 0,
      maxNewTokens: 8,
      k: 3,
      draftLength: 3,
    });
    assert.deepEqual(spectr.tokens, greedy.tokens);
    assert.equal(spectr.stats.promptTokens, greedy.stats.promptTokens);

    const gpt2 = await Deno.readFile(new URL("../../../shared/data/gpt2.tokenizer.json", import.meta.url));
    await assert.rejects(
      () =>
        SpeculativeGenerator.fromPretrained({
          target,
          draft: { ...draft, "tokenizer.json": gpt2 },
          backend: "wasm",
        }),
      { name: "RangeError", message: /8192.*50257|50257.*8192/ },
    );
    await assert.rejects(
      () =>
        SpeculativeGenerator.fromPretrained({ target: modelPath("target") + "-missing", backend: "wasm" }),
      ModelNotFoundError,
    );
    // Still usable after the failed loads.
    const again = await generator.generate("Once upon a time", {
      temperature: 0,
      maxNewTokens: 8,
      k: 2,
      draftLength: 2,
    });
    assert.deepEqual(again.tokens, greedy.tokens);
    await generator.dispose();
  },
});

Deno.test({
  name:
    "fromPretrained: the draft runs on the target's resolved backend; a bad draftNumThreads is a RangeError",
  ignore: !ready,
  async fn() {
    await assert.rejects(
      () =>
        SpeculativeGenerator.fromPretrained({
          target: modelPath("target"),
          draft: modelPath("draft"),
          backend: "wasm",
          draftNumThreads: 0,
        }),
      { name: "RangeError", message: /draftNumThreads must be an integer >= 1, got 0/ },
    );
    const generator = await SpeculativeGenerator.fromPretrained({
      target: modelPath("target"),
      draft: modelPath("draft"),
      backend: "auto",
    });
    try {
      const target = generator.target as unknown as { backend: string };
      const draft = generator.draft as unknown as { backend: string };
      assert.equal(draft.backend, target.backend);
    } finally {
      await generator.dispose();
    }
  },
});

Deno.test({
  name: "fromPretrained picks the target's and the draft's files independently (dtype, draftOptions)",
  ignore: !ready,
  async fn() {
    const target = await folderFiles(modelPath("target"));
    const draft = await folderFiles(modelPath("draft"));
    // A draft folder holding only a "q8" file (the fp32 bytes under the q8 name): the draft must
    // pick it by its own dtype while the target keeps fp32.
    const draftQ8 = { ...draft, "onnx/model_quantized.onnx": draft["onnx/model.onnx"] };
    delete (draftQ8 as Record<string, Uint8Array>)["onnx/model.onnx"];
    const generator = await SpeculativeGenerator.fromPretrained({
      target,
      draft: draftQ8,
      backend: "wasm",
      dtype: "fp32",
      draftOptions: { dtype: "q8" },
    });
    const files = [generator.target, generator.draft].map((m) => (m as unknown as { file: string }).file);
    assert.deepEqual(files, ["onnx/model.onnx", "onnx/model_quantized.onnx"]);
    const out = await generator.generate("Once upon a time", { maxNewTokens: 4, seed: 1, temperature: 0 });
    assert.equal(out.tokens.length, 4);
    await generator.dispose();
    // Without draftOptions the draft follows the target's dtype; a draft folder without that graph
    // falls back to the one it has and the stats say which.
    const fellBack = await SpeculativeGenerator.fromPretrained({ target, draft: draftQ8, backend: "wasm" });
    const q8Draft = await fellBack.generate("Once upon a time", { maxNewTokens: 4, seed: 1, temperature: 0 });
    assert.deepEqual(q8Draft.tokens, out.tokens);
    assert.equal(q8Draft.stats.draftFile, "onnx/model_quantized.onnx");
    await fellBack.dispose();
    // A q8 target (the fp32 bytes under the q8 name) with a draft folder holding only fp32.
    const targetQ8 = { ...target, "onnx/model_quantized.onnx": target["onnx/model.onnx"] };
    const q8 = await SpeculativeGenerator.fromPretrained({
      target: targetQ8,
      draft,
      backend: "wasm",
      dtype: "q8",
    });
    const fromQ8 = await q8.generate("Once upon a time", { maxNewTokens: 4, seed: 1, temperature: 0 });
    assert.deepEqual(fromQ8.tokens, out.tokens);
    assert.equal((q8.target as unknown as { file: string }).file, "onnx/model_quantized.onnx");
    assert.equal(fromQ8.stats.draftFile, "onnx/model.onnx");
    const ar = await q8.generate("Once upon a time", { maxNewTokens: 2, method: "autoregressive" });
    assert.equal(ar.stats.draftFile, undefined);
    await q8.dispose();
    // A draft folder with neither graph: the error names the file the target's dtype asks for.
    const noGraph = { ...draft };
    delete (noGraph as Record<string, Uint8Array>)["onnx/model.onnx"];
    await assert.rejects(
      () => SpeculativeGenerator.fromPretrained({ target, draft: noGraph, backend: "wasm", dtype: "fp32" }),
      (e: unknown) => e instanceof ModelNotFoundError && /onnx\/model\.onnx/.test((e as Error).message),
    );
  },
});
