/**
 * The pre-tokenizers of llama.cpp's byte-level BPE tokenizers, in Hugging Face `tokenizer.json` terms: for each
 * `tokenizer.ggml.pre` value handled, the regexes llama.cpp's `llama-vocab.cpp` applies (as `Split`
 * pre-tokenizers, then a byte-level mapping) and its per-type flags (`ignore_merges`, the BOS default,
 * `clean_spaces`).
 *
 * @module
 */

import { UnsupportedGgufError } from "./gguf.ts";

/** What llama.cpp does for one `tokenizer.ggml.pre` value, in Hugging Face terms. */
export interface PreTokenizerSpec {
  /** The HF `pre_tokenizer` object. */
  preTokenizer: Record<string, unknown>;
  /** llama.cpp's `ignore_merges`: a pre-token that is itself in the vocabulary is one token. */
  ignoreMerges: boolean;
  /** llama.cpp's default for `add_bos` when `tokenizer.ggml.add_bos_token` is absent. */
  addBosByDefault: boolean;
  /** llama.cpp's `clean_spaces` (HF `clean_up_tokenization_spaces`). */
  cleanSpaces: boolean;
}

// llama.cpp's regexes (llama-vocab.cpp, llm_tokenizer_bpe). The GPT-2 one is HF's ByteLevel regex (llama.cpp's
// custom matcher implements its trailing `|\s+` too). The case-insensitive contractions are spelt out
// (`'[sS]`) as llama.cpp does, which every regex engine reads the same way. Every regex goes in a Split, never
// in ByteLevel's built-in one: in a Split, `\s` is Unicode White_Space (Oniguruma in the Rust library, a rewrite
// to \p{White_Space} in @huggingface/tokenizers), as in llama.cpp, while the JS library's ByteLevel regex uses
// JavaScript's `\s`, which leaves out U+0085 and takes in U+FEFF.
const GPT2_REGEX = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" +
  "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const LLAMA3_REGEX = QWEN2_REGEX.replace("|\\p{N}|", "|\\p{N}{1,3}|");

function byteLevel(): Record<string, unknown> {
  return { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false };
}

function split(regex: string): Record<string, unknown> {
  return { type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false };
}

function sequence(...pretokenizers: Record<string, unknown>[]): Record<string, unknown> {
  return { type: "Sequence", pretokenizers };
}

const PRE_GROUPS: { names: string[]; spec: () => PreTokenizerSpec }[] = [
  {
    // LLAMA_VOCAB_PRE_TYPE_STARCODER / REFACT / COMMAND_R / SMOLLM / CODESHELL / EXAONE / MINERVA:
    // regexes "\p{N}" then GPT-2's. A Split on \p{N} rather than HF's Digits(individual_digits): Digits is
    // \p{N} in the Rust library but ASCII \d in @huggingface/tokenizers (JS), which would keep "١٢" or "²³"
    // together where llama.cpp splits them.
    names: ["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"],
    spec: () => ({
      preTokenizer: sequence(split("\\p{N}"), split(GPT2_REGEX), byteLevel()),
      ignoreMerges: false,
      addBosByDefault: false,
      cleanSpaces: false,
    }),
  },
  {
    // LLAMA_VOCAB_PRE_TYPE_GPT2 / MPT / OLMO / JAIS: GPT-2's regex alone.
    names: ["gpt-2", "phi-2", "mpt", "olmo", "jais", "exaone4", "gigachat", "a.x-4.0", "mellum"],
    spec: () => ({
      preTokenizer: sequence(split(GPT2_REGEX), byteLevel()),
      ignoreMerges: false,
      addBosByDefault: false,
      cleanSpaces: true,
    }),
  },
  {
    // LLAMA_VOCAB_PRE_TYPE_LLAMA3 (ignore_merges, add_bos by default).
    names: ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"],
    spec: () => ({
      preTokenizer: sequence(split(LLAMA3_REGEX), byteLevel()),
      ignoreMerges: true,
      addBosByDefault: true,
      cleanSpaces: true,
    }),
  },
  {
    // LLAMA_VOCAB_PRE_TYPE_QWEN2 / STABLELM2.
    names: ["qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"],
    spec: () => ({
      preTokenizer: sequence(split(QWEN2_REGEX), byteLevel()),
      ignoreMerges: false,
      addBosByDefault: false,
      cleanSpaces: false,
    }),
  },
];

/** The `tokenizer.ggml.pre` values {@linkcode preTokenizerFor} knows, sorted. */
export const SUPPORTED_PRE_TOKENIZERS: readonly string[] = PRE_GROUPS.flatMap((g) => g.names).sort();

/**
 * The Hugging Face pre-tokenizer (and llama.cpp's per-type flags) for a `tokenizer.ggml.pre` value, as
 * llama.cpp's `llama-vocab.cpp` defines it. E.g. `"smollm"` → split every number character (`\p{N}`) on its
 * own, then GPT-2's byte-level regex.
 *
 * @param pre The `tokenizer.ggml.pre` string.
 * @returns The pre-tokenizer and flags.
 * @throws {UnsupportedGgufError} for a value not in {@linkcode SUPPORTED_PRE_TOKENIZERS} (including
 * llama.cpp's lossy `"default"`).
 *
 * @example SmolLM2 splits digits one by one
 * ```ts
 * import assert from "node:assert/strict";
 * import { preTokenizerFor } from "./pre_tokenizer.ts";
 *
 * const spec = preTokenizerFor("smollm");
 * assert.equal((spec.preTokenizer.pretokenizers as any)[0].pattern.Regex, "\\p{N}");
 * ```
 */
export function preTokenizerFor(pre: string): PreTokenizerSpec {
  const group = PRE_GROUPS.find((g) => g.names.includes(pre));
  if (!group) {
    throw new UnsupportedGgufError(
      `GGUF metadata "tokenizer.ggml.pre" = ${
        JSON.stringify(pre)
      } is not a supported pre-tokenizer (supported: ${SUPPORTED_PRE_TOKENIZERS.join(", ")})`,
    );
  }
  return group.spec();
}
