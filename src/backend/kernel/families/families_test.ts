// The kernel backend's family registry (families/mod.ts) and its recipes (gpt2.ts, llama.ts):
// one entry per ModelFamily under its own name, an unknown name is an InvalidModelError naming the
// known ones (directly and through KernelSession.create), and each recipe's logits are unchanged.
//
// Exactness: the logits each family's recipe gives on a small graph are pinned, bit for bit (a
// SHA-256 of the float32 bytes), to what the forward gave before it was split into per-family
// recipes (the single `#forward` of kernel_session.ts, branching on the family, at commit
// 875dc9e): the bundled GPT-2 target (models/target) and the tiny converter Llama, fp32, 8-bit and
// as a vocabulary-subset draft; a prefill of 12 tokens, then 3 tokens on 3 rows over that cache
// under a 4D mask. The kernel is deterministic (wasm without relaxed SIMD; RoPE tables from V8's
// Math.cos / Math.sin), so the pins hold on any machine; a deliberate change to the kernel's
// arithmetic must re-pin them. Power checks: the same comparison fails for a recipe changed in one
// small way (GPT-2's epsilon doubled; Llama's RoPE pairs interleaved instead of halves; the 8-bit
// gate and up swapped; the subset's token map ignored), run through the same session with the
// changed family; the known names pass the lookup an unknown one fails.
import assert from "node:assert/strict";
import { join } from "node:path";
import { convertGgufToOnnx } from "../../../convert/mod.ts";
import { minimalConfig, TINY, tinyLlamaGguf } from "../../../convert/_testing.ts";
import { parseGguf } from "../../../convert/gguf.ts";
import { buildLlamaGraph } from "../../../convert/llama_onnx.ts";
import { writeModel } from "../../../onnx/mod.ts";
import {
  type ModelConfig,
  type ModelFamily,
  parseModelConfig,
  readModelConfig,
} from "../../../model/config.ts";
import { InvalidModelError } from "../../../model/errors.ts";
import { openModelFolder } from "../../../model/loader.ts";
import { haveModel, modelPath } from "../../../model/_testing.ts";
import type { Tensor } from "../../types.ts";
import { KernelSession } from "../kernel_session.ts";
import { type AnyKernelFamily, families, kernelFamily } from "./mod.ts";
import { gpt2 } from "./gpt2.ts";
import { llama } from "./llama.ts";

Deno.test("kernel families: one frozen entry per ModelFamily, under its own name", () => {
  assert.deepEqual(Object.keys(families), ["gpt2", "llama"]);
  for (const [key, f] of Object.entries(families)) {
    assert.equal(f.name, key);
    assert.equal(kernelFamily(key), f);
    for (const fn of [f.read, f.place, f.forward]) assert.equal(typeof fn, "function", key);
    assert.ok(Object.isFrozen(f), key);
  }
  assert.equal(families.gpt2, gpt2);
  assert.equal(families.llama, llama);
  assert.ok(Object.isFrozen(families));
  // compile time: the registry's keys are exactly ModelFamily (a family without a recipe is a type error)
  type Equal<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
  const keys: Equal<keyof typeof families, ModelFamily> = true;
  // @ts-expect-error power: a key set without "llama" is not ModelFamily
  const wrong: Equal<"gpt2", ModelFamily> = true;
  assert.ok(keys && wrong);
});

Deno.test("kernel families: an unknown family is an InvalidModelError naming the known ones", async () => {
  for (const name of ["qwen9", "GPT2", "", "constructor", "__proto__", "toString"]) {
    assert.throws(
      () => kernelFamily(name),
      (e: Error) =>
        e instanceof InvalidModelError &&
        e.message === `no kernel recipe for the model family ${JSON.stringify(name)} (families: gpt2, llama)`,
      name,
    );
  }
  // through the session, as the backend loads a folder
  const llamaConfig = parseModelConfig({
    model_type: "llama",
    vocab_size: 40,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    hidden_size: 32,
    max_position_embeddings: 64,
  });
  const config: ModelConfig = { ...llamaConfig, family: ("qwen9" as string) as ModelFamily };
  await assert.rejects(
    () => KernelSession.create(new Uint8Array(0), config, "onnx/model.onnx"),
    (e: Error) =>
      e instanceof InvalidModelError &&
      e.message ===
        'Cannot load onnx/model.onnx on the kernel backend: no kernel recipe for the model family "qwen9" (families: gpt2, llama)',
  );
  // power: the known names pass the same lookup
  for (const name of ["gpt2", "llama"]) assert.equal(kernelFamily(name).name, name);
});

async function sha256(data: Float32Array): Promise<string> {
  const bytes = new Uint8Array(data.byteLength);
  bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(h, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** The logits of a prefill of 12 tokens, then of 3 tokens on 3 rows over its cache (4D mask). */
async function twoCalls(s: KernelSession, vocab: number): Promise<Float32Array[]> {
  const kv = s.inputNames.filter((n) => n.startsWith("past_key_values"));
  const meta = (n: string) => s.inputMetadata.find((m) => m.name === n)!.shape as number[];
  const ids = (xs: number[]) => BigInt64Array.from(xs, (x) => BigInt(x % vocab));
  const prompt = [1, 45, 907, 33, 18, 2600, 71, 4, 300, 12, 99, 512], t = prompt.length;
  const first: Record<string, Tensor> = {
    input_ids: s.tensor("int64", ids(prompt), [1, t]),
    attention_mask: s.tensor("int64", new BigInt64Array(t).fill(1n), [1, t]),
    position_ids: s.tensor("int64", BigInt64Array.from(prompt, (_, i) => BigInt(i)), [1, t]),
  };
  for (const n of kv) first[n] = s.tensor("float32", new Float32Array(0), [1, meta(n)[1], 0, meta(n)[3]]);
  const a = await s.run(first);
  const rows = 3, t2 = 3, total = t + t2;
  const second: Record<string, Tensor> = {
    input_ids: s.tensor("int64", ids([5, 6, 7, 8, 9, 10, 11, 12, 13]), [rows, t2]),
    position_ids: s.tensor("int64", BigInt64Array.from([12, 13, 14, 12, 13, 13, 12, 12, 12], BigInt), [
      rows,
      t2,
    ]),
  };
  // row 0: a chain; row 1: token 2 sees token 0 but not 1; row 2: three siblings
  const sees = [[[0], [0, 1], [0, 1, 2]], [[0], [0, 1], [0, 2]], [[0], [1], [2]]];
  const mask = new BigInt64Array(rows * t2 * total);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < t2; i++) {
      for (let j = 0; j < t; j++) mask[(r * t2 + i) * total + j] = 1n;
      for (const j of sees[r][i]) mask[(r * t2 + i) * total + t + j] = 1n;
    }
  }
  second.attention_mask = s.tensor("int64", mask, [rows, 1, t2, total]);
  for (const n of kv) {
    const p = a[n.replace("past_key_values", "present")].data as Float32Array;
    const tiled = new Float32Array(rows * p.length);
    for (let r = 0; r < rows; r++) tiled.set(p, r * p.length);
    second[n] = s.tensor("float32", tiled, [rows, meta(n)[1], t, meta(n)[3]]);
  }
  const b = await s.run(second);
  return [a.logits.data as Float32Array, b.logits.data as Float32Array];
}

/** Head rows of the vocabulary-subset graph, and the token id each goes to. */
const SUBSET_ROWS = 25;
const subsetId = (i: number) => (3 * i + 1) % TINY.vocab;

/**
 * The tiny converter Llama (tied head) as a vocabulary-subset draft: the embedding Gather indexed
 * through a token map (token id → row (7·id) mod vocab), the head's first 25 rows kept by a Slice
 * and scattered by ScatterElements to the token ids `subsetId(i)` of a ConstantOfShape row (fill 0),
 * as the real draft models/smollm2-draft is built (there with −∞).
 */
async function writeSubsetLlama(path: string): Promise<void> {
  const gguf = tinyLlamaGguf();
  const { graph: g, opsets } = buildLlamaGraph(parseGguf(gguf), gguf, { precision: "fp32" });
  const nodes = g.nodes as { opType: string; input: string[]; output: string[] }[];
  const V = TINY.vocab, H = SUBSET_ROWS;
  // the token map before the embedding Gather
  const embedAt = nodes.findIndex((n) => n.opType === "Gather" && n.input[1] === "input_ids");
  const map = g.ints("token_map", Array.from({ length: V }, (_, id) => (7 * id) % V));
  const [rows] = g.node("Gather", [map, "input_ids"], { axis: 0 });
  nodes.splice(embedAt, 0, nodes.pop()!);
  nodes[embedAt + 1].input[1] = rows;
  // Slice → ScatterElements between the head's Gemm and the final Reshape to "logits"
  const last = nodes.pop()!;
  assert.ok(last.opType === "Reshape" && last.output[0] === "logits");
  const ints = (name: string, v: number[]) => g.ints(name, v);
  const [kept] = g.node("Slice", [last.input[0], ints("s0", [0]), ints("s1", [H]), ints("s2", [1])]);
  const [m] = g.node("ReduceProd", [g.node("Shape", ["input_ids"])[0]], { keepdims: 1 });
  const shape = (name: string, n: number) => g.node("Concat", [m, ints(name, [n])], { axis: 0 })[0];
  const [full] = g.node("ConstantOfShape", [shape("vocab", V)]);
  const ids = ints("head_ids", Array.from({ length: H }, (_, i) => subsetId(i)));
  const [index] = g.node("Expand", [ids, shape("head_rows", H)]);
  const [scattered] = g.node("ScatterElements", [full, index, kept], { axis: 1 });
  last.input[0] = scattered;
  nodes.push(last);
  await writeModel(path, g, { opsets });
}

/**
 * The tiny converter Llama in a temporary folder (remove its parent): fp32 and 8-bit graphs, and
 * onnx/subset.onnx ({@linkcode writeSubsetLlama}).
 */
async function tinyLlamaFolder(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "spectr_kernel_families_" });
  await convertGgufToOnnx(tinyLlamaGguf(), join(dir, "m"), {
    dtypes: ["fp32", "q8"],
    attentionMask: "any",
    writeExtras: ({ folder, file }) =>
      Deno.writeTextFile(join(folder, "config.json"), JSON.stringify(minimalConfig(file))),
  });
  await writeSubsetLlama(join(dir, "m", "onnx", "subset.onnx"));
  return join(dir, "m");
}

async function logitsOf(
  folder: string,
  file: string,
  family?: AnyKernelFamily,
  path: "bytes" | "image" = "bytes",
): Promise<Float32Array[]> {
  const files = await openModelFolder(folder);
  const config = await readModelConfig(files);
  const s = path === "image"
    ? await KernelSession.load(files, file, config) // the file read into the kernel's memory, codes in place
    : await KernelSession.create(await files.readBytes(file), config, file, family);
  try {
    return await twoCalls(s, config.vocabSize);
  } finally {
    await s.release();
  }
}

/** SHA-256 of each call's logits before the split into recipes (commit 875dc9e). */
const PINNED = {
  gpt2: [
    "8f7bfa25423256cfb5857fa18a3c0c424968e5a4dd81fba3d904f16a235bae57",
    "572deeb66f7009f377c9e27db606a7898ce7caf66e8c50835fd37a585bf2a9ed",
  ],
  llamaFp32: [
    "242a8713320add90f123316ac5a0ee4eb3d3fef35c8b5a5b0aecddb03a72cbd3",
    "931daf0057875acd1db6970d379b7ab58d82315823acfc4f63ed6e584892da3d",
  ],
  // re-pinned 2026-12-08: the 8-bit layers' activation block sums (the weights' block minimums' term)
  // now add four lanes at a time (wasm/src/lm.rs quantize_block); codes and scales unchanged, the layer
  // checked against its definition by src/kernel/lm_simd_test.ts
  llamaQ8: [
    "51075a1b45de9f78c8b3f2d92293b4ca37d3df6d7c559bb2e27d14d7b722af9c",
    "4ed9d83024b3cc0b4eb79026f5bab73d51f3d5ed80bb980b32db21a2e3a9193c",
  ],
  llamaSubset: [
    "f721b8fdfb554322a823881b544a4562f6f91e4337cf15fd0cb3f03bc658ccb1",
    "88ba8b1272b038ac39e8298adcf8162c98a2f4e744223b3aafe398482aeeabab",
  ],
};

function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  let m = 0;
  a.forEach((x, c) => x.forEach((v, i) => (m = Math.max(m, Math.abs(v - b[c][i])))));
  return m;
}

/** GPT-2 with every LayerNorm's epsilon doubled. */
const gpt2Eps: AnyKernelFamily = {
  ...gpt2,
  place: (mem, w, config) => ({ ...gpt2.place(mem, w, config), eps: 2 * w.eps }),
};
/** Llama with RoPE rotating pairs (2i, 2i + 1) instead of (i, i + hd/2). */
const llamaInterleaved: AnyKernelFamily = {
  ...llama,
  place: (mem, w, config) => ({ ...llama.place(mem, w, config), rope: "interleaved" }),
};
/** Llama with the MLP's gate and up projections swapped. */
const llamaGateUp: AnyKernelFamily = {
  ...llama,
  place: (mem, w, config) => {
    const m = llama.place(mem, w, config);
    return { ...m, layers: m.layers.map((l) => ({ ...l, gate: l.up, up: l.gate })) };
  },
};

/** Llama with a vocabulary subset's token map ignored (token id = embedding row). */
const llamaNoMap: AnyKernelFamily = {
  ...llama,
  place: (mem, w, config) => {
    const m = llama.place(mem, w, config);
    return { ...m, subset: { ...m.subset!, inMap: Int32Array.from(m.subset!.inMap, (_, id) => id) } };
  },
};

Deno.test({
  name: "kernel families: each recipe's logits equal the pre-registry forward's, bit for bit",
  ignore: !haveModel("target"),
  fn: async () => {
    const folder = await tinyLlamaFolder();
    try {
      const cases = {
        gpt2: [modelPath("target"), "onnx/model.onnx", gpt2Eps],
        llamaFp32: [folder, "onnx/model.onnx", llamaInterleaved],
        llamaQ8: [folder, "onnx/model_quantized.onnx", llamaGateUp],
        llamaSubset: [folder, "onnx/subset.onnx", llamaNoMap],
      } as const;
      for (const name of ["gpt2", "llamaFp32", "llamaQ8", "llamaSubset"] as const) {
        const [dir, file, changed] = cases[name];
        const calls = await logitsOf(dir, file);
        const digests = await Promise.all(calls.map(sha256));
        console.log(`${name}: ${digests.join(" ")}`);
        for (const c of calls) assert.ok(c.every(Number.isFinite) && c.some((x) => x !== c[0]), name);
        if (name === "llamaSubset") {
          // the tokens outside the subset get the fill, those in it a computed logit
          const head = new Set(Array.from({ length: SUBSET_ROWS }, (_, i) => subsetId(i)));
          for (const c of calls) c.forEach((x, i) => assert.equal(x === 0, !head.has(i % TINY.vocab)));
        }
        assert.deepEqual(digests, PINNED[name], name);
        // the backend's path (file_image.ts: the file read into the kernel's memory, 8-bit codes
        // re-centred and used where they lie) gives the same bits
        const image = await Promise.all((await logitsOf(dir, file, undefined, "image")).map(sha256));
        assert.deepEqual(image, PINNED[name], `${name} through the file image`);
        // power: the same comparison fails for the recipe changed in one small way
        const other = await logitsOf(dir, file, changed);
        console.log(`${name}, changed recipe: logits ${maxDiff(other, calls).toExponential(1)} apart`);
        assert.notDeepEqual(await Promise.all(other.map(sha256)), PINNED[name], `${name}: changed recipe`);
      }
    } finally {
      await Deno.remove(join(folder, ".."), { recursive: true });
    }
  },
});
