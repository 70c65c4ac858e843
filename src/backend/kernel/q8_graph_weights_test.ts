// The 8-bit converter graph's weights (q8_graph_weights.ts) against the fp32 graph converted from
// the same tiny GGUF (whose weights transformer_weights_test.ts checks against the GGUF tensors):
// every dequantized weight equals its fp32 counterpart to float32 rounding (the converter's 8-bit
// codes represent Q4_1 / Q8_0 blocks exactly). Power check: the same comparison rejects a mapping
// with gate and up swapped and one with the codes left uncentred (zero point forgotten).
import assert from "node:assert/strict";
import { join } from "node:path";
import { convertGgufToOnnx } from "../../convert/mod.ts";
import { minimalConfig, tinyLlamaGguf } from "../../convert/_testing.ts";
import { readModelConfig } from "../../model/config.ts";
import { openModelFolder } from "../../model/loader.ts";
import { readOnnxGraph } from "../../onnx/mod.ts";
import { converterQ8Weights, isConverterQ8Graph } from "./q8_graph_weights.ts";
import type { Q8Weight } from "./q8_weight.ts";
import { llamaGraphWeights, type LlamaWeights } from "./families/llama.ts";
import { OnnxCausalLM } from "../../model/causal_lm.ts";

/** W as [k, n] float64 from the 8-bit form, written out from the documented formula. */
function dense(w: Q8Weight): Float64Array {
  const out = new Float64Array(w.k * w.n), blocks = w.k / 32;
  for (let j = 0; j < w.n; j++) {
    for (let i = 0; i < w.k; i++) {
      const b = Math.floor(i / 32);
      out[i * w.n + j] = w.scales[j * blocks + b] * (w.codes[j * w.k + i] - 128) +
        (w.mins?.[j * blocks + b] ?? 0);
    }
  }
  return out;
}

function worst(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return m;
}

async function tinyFolder(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "spectr_q8_graph_" });
  await convertGgufToOnnx(tinyLlamaGguf(), join(dir, "m"), {
    dtypes: ["fp32", "q8"],
    writeExtras: async ({ folder, file }) => {
      await Deno.writeTextFile(join(folder, "config.json"), JSON.stringify(minimalConfig(file)));
    },
  });
  return join(dir, "m");
}

function compare(q8: ReturnType<typeof converterQ8Weights>, f: LlamaWeights): number {
  let m = worst(dense(q8.embed), transpose(f.embed, q8.embed.n, q8.embed.k));
  q8.layers.forEach((l, i) => {
    const r = f.layers[i];
    for (const key of ["q", "k", "v", "o", "gate", "up", "down"] as const) {
      m = Math.max(m, worst(dense(l[key]), r[key]));
    }
    m = Math.max(m, worst(l.inputNorm, r.inputNorm), worst(l.postNorm, r.postNorm));
  });
  return m;
}

/** [rows, cols] → [cols, rows] (the embedding is vocab-major; dense() gives [k, n]). */
function transpose(x: Float32Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c];
  return out;
}

Deno.test("converterQ8Weights: the tiny q8 graph's weights equal the fp32 graph's; swapped or uncentred mappings fail", async () => {
  const folder = await tinyFolder();
  try {
    const files = await openModelFolder(folder);
    const config = await readModelConfig(files);
    const q8Graph = readOnnxGraph(await files.readBytes("onnx/model_quantized.onnx"));
    assert.ok(isConverterQ8Graph(q8Graph));
    const q8 = converterQ8Weights(q8Graph, config);
    const f = llamaGraphWeights(readOnnxGraph(await files.readBytes("onnx/model.onnx")), config);
    const right = compare(q8, f);
    assert.ok(right < 1e-6, `8-bit vs fp32 weights: ${right}`);
    const swapped = { ...q8, layers: q8.layers.map((l) => ({ ...l, gate: l.up, up: l.gate })) };
    assert.ok(compare(swapped, f) > 1e-2, "gate/up swapped must be caught");
    const uncentred = {
      ...q8,
      embed: { ...q8.embed, codes: q8.embed.codes.map((c) => c ^ 0x80) },
    };
    assert.ok(compare(uncentred as typeof q8, f) > 1e-2, "codes left uncentred must be caught");
    assert.equal(q8.rope, "half");
    assert.ok(Math.abs(q8.eps - 1e-5) < 1e-9);
  } finally {
    await Deno.remove(join(folder, ".."), { recursive: true });
  }
});

Deno.test("kernel backend on the tiny q8 graph: argmax and logits within onnxruntime's own q8 rounding", async () => {
  const folder = await tinyFolder();
  try {
    const prompt = [1, 5, 9, 13, 2, 7, 30, 11];
    const run = async (options: Parameters<typeof OnnxCausalLM.load>[1]) => {
      const m = await OnnxCausalLM.load(folder, options);
      try {
        return await m.append([prompt], prompt.length);
      } finally {
        await m.dispose();
      }
    };
    const kernel = await run({ backend: "kernel", dtype: "q8" });
    const ortQ8 = await run({ backend: "cpu", numThreads: 1, dtype: "q8" });
    const ortF32 = await run({ backend: "cpu", numThreads: 1 });
    const kernelF32 = await run({ backend: "kernel" });
    const abs = (a: Float32Array, b: Float32Array) =>
      a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
    const spread = abs(ortQ8, ortF32), ours = abs(kernel, ortQ8), f32 = abs(kernelF32, ortF32);
    console.log(
      `tiny: kernel q8 vs ort q8 ${ours.toExponential(1)}, ort q8 vs fp32 ${
        spread.toExponential(1)
      }, kernel fp32 vs ort fp32 ${f32.toExponential(1)}`,
    );
    assert.ok(f32 < 1e-4);
    assert.ok(ours <= 1.5 * Math.max(spread, 1e-3), `kernel q8 vs onnxruntime q8 ${ours}`);
  } finally {
    await Deno.remove(join(folder, ".."), { recursive: true });
  }
});
