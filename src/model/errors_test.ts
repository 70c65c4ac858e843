import assert from "node:assert/strict";
import { OnnxCausalLM } from "./causal_lm.ts";
import { BackendUnavailableError, InvalidModelError, ModelNotFoundError } from "./errors.ts";
import type { ModelFiles } from "./loader.ts";
import { granted, haveModel, maxAbsDiff, modelPath, randomTokens } from "./_testing.ts";

const ffi = granted("ffi", "the cpu half of the corrupt-bytes test");

const have = haveModel("draft");

async function draftFiles(change: (config: Record<string, unknown>) => void = () => {}): Promise<ModelFiles> {
  const dir = modelPath("draft");
  const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  change(config);
  return {
    "config.json": JSON.stringify(config),
    "onnx/model.onnx": await Deno.readFile(`${dir}/onnx/model.onnx`),
  };
}

async function rejects(
  load: () => Promise<unknown>,
  kind: new (...args: never[]) => Error,
  fragment: RegExp,
): Promise<void> {
  await assert.rejects(load, (error: Error) => {
    assert.ok(
      error instanceof kind,
      `expected ${kind.name}, got ${error?.constructor?.name}: ${error?.message}`,
    );
    assert.match(error.message, fragment);
    return true;
  });
}

Deno.test("Loading a missing folder throws ModelNotFoundError naming the path", async () => {
  await rejects(
    () => OnnxCausalLM.load("/no/such/model"),
    ModelNotFoundError,
    /does not exist, got \/no\/such\/model/,
  );
  const error = await OnnxCausalLM.load("/no/such/model").catch((e) => e);
  assert.equal(error.path, "/no/such/model");
});

Deno.test({
  name: "Loading a file as a folder throws ModelNotFoundError saying it is not a directory",
  ignore: !have,
  async fn() {
    await rejects(
      () => OnnxCausalLM.load(`${modelPath("draft")}/config.json`),
      ModelNotFoundError,
      /not a directory/,
    );
  },
});

Deno.test({
  name: "A folder without config.json throws ModelNotFoundError naming config.json",
  ignore: !have,
  async fn() {
    const files = await draftFiles();
    delete files["config.json"];
    await rejects(() => OnnxCausalLM.load(files), ModelNotFoundError, /config\.json/);
  },
});

Deno.test({
  name: "A folder without the ONNX file throws ModelNotFoundError naming the file, also for another dtype",
  ignore: !have,
  async fn() {
    const files = await draftFiles();
    delete files["onnx/model.onnx"];
    await rejects(
      () => OnnxCausalLM.load(files, { backend: "wasm" }),
      ModelNotFoundError,
      /onnx\/model\.onnx/,
    );
    await rejects(
      () => OnnxCausalLM.load(modelPath("draft"), { backend: "wasm", dtype: "fp16" }),
      ModelNotFoundError,
      /onnx\/model_fp16\.onnx/,
    );
  },
});

Deno.test({
  name: "Corrupt ONNX bytes throw InvalidModelError on both the wasm and cpu backends",
  ignore: !have,
  async fn() {
    const files = await draftFiles();
    const bytes = (files["onnx/model.onnx"] as Uint8Array).slice(0, 5000);
    bytes.fill(7, 100, 4000);
    files["onnx/model.onnx"] = bytes;
    await rejects(
      () => OnnxCausalLM.load(files, { backend: "wasm" }),
      InvalidModelError,
      /onnx\/model\.onnx.*rejected/,
    );
    if (ffi) {
      await rejects(
        () => OnnxCausalLM.load(files, { backend: "cpu" }),
        InvalidModelError,
        /rejected the file/,
      );
    }
  },
});

Deno.test({
  name: "A config that disagrees with the graph throws InvalidModelError naming both values",
  ignore: !have,
  async fn() {
    const config = JSON.parse(await Deno.readTextFile(`${modelPath("draft")}/config.json`));
    const { num_hidden_layers: layers, num_key_value_heads: kvHeads, head_dim: headDim } = config;
    await rejects(
      async () =>
        OnnxCausalLM.load(await draftFiles((c) => (c.num_hidden_layers = layers + 1)), { backend: "wasm" }),
      InvalidModelError,
      new RegExp(`${layers + 1} layers but the graph has ${layers} `),
    );
    await rejects(
      async () =>
        OnnxCausalLM.load(await draftFiles((c) => (c.num_key_value_heads = kvHeads * 2)), {
          backend: "wasm",
        }),
      InvalidModelError,
      new RegExp(`${kvHeads * 2} key/value heads .* has ${kvHeads},`),
    );
    await rejects(
      async () => OnnxCausalLM.load(await draftFiles((c) => (c.head_dim = headDim * 2)), { backend: "wasm" }),
      InvalidModelError,
      new RegExp(`head size ${headDim * 2} .* has ${headDim},`),
    );
  },
});

Deno.test({
  name: "An unsupported model_type or invalid config JSON throws InvalidModelError",
  ignore: !have,
  async fn() {
    await rejects(
      async () => OnnxCausalLM.load(await draftFiles((c) => (c.model_type = "bert"))),
      InvalidModelError,
      /unsupported model_type.*"bert"/,
    );
    const files = await draftFiles();
    files["config.json"] = "{ not json";
    await rejects(() => OnnxCausalLM.load(files), InvalidModelError, /config\.json.*not valid JSON/);
  },
});

Deno.test({
  name: "Unknown backend, unknown dtype and bad numThreads or maxLength options throw RangeError",
  ignore: !have,
  async fn() {
    const dir = modelPath("draft");
    // deno-lint-ignore no-explicit-any
    await rejects(
      () => OnnxCausalLM.load(dir, { backend: "tpu" as any }),
      RangeError,
      /backend must be one of.*"tpu"/,
    );
    // deno-lint-ignore no-explicit-any
    await rejects(
      () => OnnxCausalLM.load(dir, { dtype: "int4" as any }),
      RangeError,
      /dtype must be one of.*"int4"/,
    );
    await rejects(() => OnnxCausalLM.load(dir, { numThreads: 0 }), RangeError, /numThreads.*got 0/);
    const limit = JSON.parse(await Deno.readTextFile(`${dir}/config.json`)).max_position_embeddings;
    await rejects(
      () => OnnxCausalLM.load(dir, { maxLength: 100000 }),
      RangeError,
      new RegExp(`maxLength.*\\[1, ${limit}\\]`),
    );
  },
});

Deno.test({
  name: "The webgpu backend where navigator.gpu is missing throws BackendUnavailableError",
  ignore: !have,
  async fn() {
    Object.defineProperty(navigator, "gpu", { value: undefined, configurable: true });
    try {
      await rejects(
        () => OnnxCausalLM.load(modelPath("draft"), { backend: "webgpu" }),
        BackendUnavailableError,
        /webgpu backend: navigator\.gpu is missing/,
      );
    } finally {
      delete (navigator as { gpu?: unknown }).gpu;
    }
    assert.ok("gpu" in navigator === ("gpu" in Object.getPrototypeOf(navigator)));
  },
});

Deno.test({
  name: "Bad calls on a loaded model throw RangeError with the cause and leave the model usable",
  ignore: !have,
  async fn() {
    const model = await OnnxCausalLM.load(modelPath("draft"), { backend: "wasm", numThreads: 1 });
    try {
      const v = model.vocabSize;
      const prompt = randomTokens(6, v, 1);
      const reference = await model.append([prompt], 1);
      const usable = async () => {
        model.reset();
        assert.ok(maxAbsDiff(await model.append([prompt], 1), reference) <= 1e-5);
      };
      model.reset();
      await model.append([prompt.slice(0, 3)], 1);
      await rejects(
        () => model.append([[v]], 1),
        RangeError,
        new RegExp(`is ${v}, outside the vocabulary \\[0, ${v}\\)`),
      );
      await rejects(() => model.append([[-1]], 1), RangeError, /outside the vocabulary/);
      await rejects(() => model.append([[1.5]], 1), RangeError, /outside the vocabulary/);
      await rejects(() => model.append([[1], [2]], 1), RangeError, /one token list per row \(1\), got 2/);
      await rejects(
        () => model.append([[1, 2]], 3),
        RangeError,
        /keep must be an integer in \[1, 2\], got 3/,
      );
      await rejects(
        () => model.append([new Array(model.maxLength).fill(1)], 1),
        RangeError,
        new RegExp(
          `3 held \\+ ${model.maxLength} new exceeds the context limit of ${model.maxLength} tokens`,
        ),
      );
      assert.equal(model.length, 3);
      model.fork(2);
      assert.throws(() => model.fork(2), RangeError);
      assert.throws(() => model.select(2, 1), /row must be an integer in \[0, 2\), got 2/);
      assert.throws(() => model.select(0, 4), /length must be an integer in \[0, 3\], got 4/);
      await usable();
      // a full context is fine, one more token is not
      model.reset();
      await model.append([new Array(model.maxLength).fill(5)], 1);
      await rejects(
        () => model.append([[5]], 1),
        RangeError,
        new RegExp(`context limit of ${model.maxLength} tokens`),
      );
      await usable();
      // one operation at a time: a second call while an append runs is refused, the first completes
      model.reset();
      const running = model.append([prompt], 1);
      await rejects(() => model.append([prompt], 1), Error, /an append is still running/);
      assert.throws(() => model.fork(2), /an append is still running/);
      assert.ok(maxAbsDiff(await running, reference) <= 1e-5);
      await usable();
    } finally {
      await model.dispose();
    }
    await rejects(() => model.append([[1]], 1), Error, /disposed/);
  },
});
