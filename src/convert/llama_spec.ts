/**
 * The shape of a Llama-family GGUF (`general.architecture` = "llama"): hyperparameters from the
 * `llama.*` metadata, a check that the tensor set is exactly what a dense Llama has (no MoE, no
 * biases, no rope scaling), and the row order that undoes llama.cpp's q/k permutation.
 *
 * @module
 */

import {
  findTensor,
  type GgufFile,
  type GgufTensorInfo,
  InvalidGgufError,
  metadataNumber,
  metadataString,
  UnsupportedGgufError,
} from "./gguf.ts";

/** Hyperparameters of a dense Llama model, as read from GGUF metadata. */
export interface LlamaSpec {
  /** `llama.block_count`. */
  numLayers: number;
  /** `llama.embedding_length`. */
  hiddenSize: number;
  /** `llama.feed_forward_length`. */
  intermediateSize: number;
  /** `llama.attention.head_count`. */
  numHeads: number;
  /** `llama.attention.head_count_kv` (default: heads). */
  numKvHeads: number;
  /** `llama.attention.key_length` (default: hidden / heads). */
  headDim: number;
  /** `llama.vocab_size`, else token_embd's row count. */
  vocabSize: number;
  /** `llama.attention.layer_norm_rms_epsilon`. */
  rmsNormEps: number;
  /** `llama.rope.freq_base` (10000 when absent). */
  ropeTheta: number;
  /** `llama.context_length`. */
  maxPositions: number;
  /** True when there is no `output.weight` (the LM head is the embedding). */
  tiedEmbeddings: boolean;
}

/** Per-layer tensor names (suffixes of `blk.{i}.`). */
export const LAYER_TENSORS = [
  "attn_norm",
  "attn_q",
  "attn_k",
  "attn_v",
  "attn_output",
  "ffn_norm",
  "ffn_gate",
  "ffn_up",
  "ffn_down",
] as const;

/** The architectures this converter handles. */
export const SUPPORTED_ARCHITECTURES: readonly string[] = ["llama"];

/**
 * Reads and checks a Llama GGUF's hyperparameters and tensor set.
 *
 * @throws {UnsupportedGgufError} another architecture, a mixture of experts, rope scaling,
 *   partial rotary embeddings, or a tensor a dense Llama does not have (named).
 * @throws {InvalidGgufError} missing metadata or tensors, or a tensor of the wrong shape.
 */
export function llamaSpec(file: GgufFile): LlamaSpec {
  const arch = metadataString(file, "general.architecture");
  if (!SUPPORTED_ARCHITECTURES.includes(arch)) {
    throw new UnsupportedGgufError(
      `Architecture "${arch}" is not supported (supported: ${SUPPORTED_ARCHITECTURES.join(", ")})`,
    );
  }
  const num = (key: string, fallback?: number) => metadataNumber(file, `llama.${key}`, fallback);
  const experts = num("expert_count", 0);
  if (experts > 0) {
    throw new UnsupportedGgufError(`Mixture-of-experts Llama (llama.expert_count = ${experts})`);
  }
  const scaling = file.metadata.get("llama.rope.scaling.type");
  if (scaling !== undefined && scaling !== "none") {
    throw new UnsupportedGgufError(
      `RoPE scaling "${String(scaling)}" (llama.rope.scaling.type) is not supported`,
    );
  }
  const hiddenSize = num("embedding_length");
  const numHeads = num("attention.head_count");
  const numKvHeads = num("attention.head_count_kv", numHeads);
  const headDim = num("attention.key_length", hiddenSize / numHeads);
  const valueDim = num("attention.value_length", headDim);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0 || valueDim !== headDim) {
    throw new UnsupportedGgufError(`Head size ${headDim} (value size ${valueDim}) is not supported`);
  }
  if (numHeads % numKvHeads !== 0) {
    throw new InvalidGgufError(
      `llama.attention.head_count ${numHeads} is not a multiple of head_count_kv ${numKvHeads}`,
    );
  }
  const ropeDims = num("rope.dimension_count", headDim);
  if (ropeDims !== headDim) {
    throw new UnsupportedGgufError(
      `Partial rotary embeddings (rope.dimension_count ${ropeDims} < head size ${headDim})`,
    );
  }
  const embed = tensor(file, "token_embd.weight");
  const spec: LlamaSpec = {
    numLayers: num("block_count"),
    hiddenSize,
    intermediateSize: num("feed_forward_length"),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: num("vocab_size", embed.dims[1]),
    rmsNormEps: num("attention.layer_norm_rms_epsilon"),
    ropeTheta: num("rope.freq_base", 10000),
    maxPositions: num("context_length"),
    tiedEmbeddings: findTensor(file, "output.weight") === undefined,
  };
  checkTensors(file, spec);
  return spec;
}

function tensor(file: GgufFile, name: string): GgufTensorInfo {
  const t = findTensor(file, name);
  if (!t) throw new InvalidGgufError(`GGUF tensor "${name}" is missing`);
  return t;
}

function checkTensors(file: GgufFile, s: LlamaSpec): void {
  const q = s.numHeads * s.headDim, kv = s.numKvHeads * s.headDim;
  const expected = new Map<string, number[]>([
    ["token_embd.weight", [s.hiddenSize, s.vocabSize]],
    ["output_norm.weight", [s.hiddenSize]],
  ]);
  if (!s.tiedEmbeddings) expected.set("output.weight", [s.hiddenSize, s.vocabSize]);
  for (let i = 0; i < s.numLayers; i++) {
    const shapes: Record<(typeof LAYER_TENSORS)[number], number[]> = {
      attn_norm: [s.hiddenSize],
      attn_q: [s.hiddenSize, q],
      attn_k: [s.hiddenSize, kv],
      attn_v: [s.hiddenSize, kv],
      attn_output: [q, s.hiddenSize],
      ffn_norm: [s.hiddenSize],
      ffn_gate: [s.hiddenSize, s.intermediateSize],
      ffn_up: [s.hiddenSize, s.intermediateSize],
      ffn_down: [s.intermediateSize, s.hiddenSize],
    };
    for (const name of LAYER_TENSORS) expected.set(`blk.${i}.${name}.weight`, shapes[name]);
  }
  for (const t of file.tensors) {
    if (!expected.has(t.name)) {
      throw new UnsupportedGgufError(
        `Tensor "${t.name}" is not part of a dense Llama model; it cannot be converted`,
      );
    }
  }
  for (const [name, dims] of expected) {
    const t = tensor(file, name);
    if (t.dims.join(",") !== dims.join(",")) {
      throw new InvalidGgufError(`GGUF tensor "${name}" has dims [${t.dims}], expected [${dims}]`);
    }
  }
}

/**
 * For llama.cpp's q/k permutation of a `[heads · headDim, K]` matrix: entry `r` is the GGUF row
 * that holds Hugging Face row `r`. llama.cpp's converter reorders each head's rows so its
 * interleaved-pair RoPE works; Hugging Face's `rotate_half` RoPE pairs row j with row j + D/2.
 * HF row h·D + s·D/2 + j (s ∈ {0, 1}, j < D/2) is GGUF row h·D + 2j + s.
 *
 * @example
 * ```ts
 * import { hfRowOrder } from "./llama_spec.ts";
 * console.assert(hfRowOrder(1, 4).join() === "0,2,1,3");
 * ```
 */
export function hfRowOrder(heads: number, headDim: number): Int32Array {
  const order = new Int32Array(heads * headDim);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < 2; s++) {
      for (let j = 0; j < half; j++) order[h * headDim + s * half + j] = h * headDim + 2 * j + s;
    }
  }
  return order;
}
