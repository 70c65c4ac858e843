/**
 * The Hugging Face side files of a model folder, built from a GGUF file: `tokenizer.json`,
 * `tokenizer_config.json`, `config.json` and `generation_config.json`. Pure functions of a parsed
 * {@linkcode GgufFile}; writing them (and the weights) is the caller's business.
 *
 * The tokenizer reproduces llama.cpp's (checked token for token against node-llama-cpp on SmolLM2 in
 * tests/gguf_tokenizer_test.ts): no BOS unless `tokenizer.ggml.add_bos_token`, EOS = `tokenizer.ggml.eos_token_id`
 * (`<|im_end|>` for SmolLM2), the pre-tokenizer `tokenizer.ggml.pre` names (SmolLM2's `"smollm"` splits every
 * digit on its own).
 *
 * @module
 */

import type { GgufFile } from "./gguf.ts";
import { buildConfigJson, buildGenerationConfig } from "./hf_config.ts";
import { buildTokenizerConfig, buildTokenizerJson, type TokenizerJson } from "./tokenizer_json.ts";

export {
  buildConfigJson,
  buildGenerationConfig,
  END_OF_GENERATION_TOKENS,
  endOfGenerationIds,
  shortestFloat32,
} from "./hf_config.ts";
export {
  type AddedToken,
  addedTokens,
  buildTokenizerConfig,
  buildTokenizerJson,
  type GgufVocab,
  metadataBool,
  preTokenizerFor,
  type PreTokenizerSpec,
  readGgufVocab,
  SUPPORTED_PRE_TOKENIZERS,
  type TokenizerJson,
  TokenType,
} from "./tokenizer_json.ts";

/** The four JSON files, by file name. */
export interface HfFiles {
  /** See {@linkcode buildTokenizerJson}. */
  "tokenizer.json": TokenizerJson;
  /** See {@linkcode buildTokenizerConfig}. */
  "tokenizer_config.json": Record<string, unknown>;
  /** See {@linkcode buildConfigJson}. */
  "config.json": Record<string, unknown>;
  /** See {@linkcode buildGenerationConfig}. */
  "generation_config.json": Record<string, unknown>;
}

/**
 * Builds all four side files of a Llama-architecture, byte-level BPE GGUF.
 *
 * @param file The parsed GGUF (`parseGguf` / `readGgufFile` of ./gguf.ts).
 * @returns The files by name; write each with `JSON.stringify(value, null, 2)`.
 * @throws {InvalidGgufError} a missing or malformed metadata key (the message names it).
 * @throws {UnsupportedGgufError} an architecture, tokenizer model or pre-tokenizer this converter does not
 * handle.
 *
 * @example Convert a tiny GGUF and load the tokenizer
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildHfFiles } from "./hf_files.ts";
 * import { Tokenizer } from "../tokenizer/tokenizer.ts";
 * import type { GgufFile } from "./gguf.ts";
 *
 * const file: GgufFile = {
 *   version: 3, tensors: [], dataOffset: 0, alignment: 32, byteLength: 0,
 *   metadata: new Map<string, any>([
 *     ["general.architecture", "llama"], ["llama.embedding_length", 8], ["llama.feed_forward_length", 16],
 *     ["llama.block_count", 1], ["llama.attention.head_count", 2], ["llama.context_length", 64],
 *     ["llama.attention.layer_norm_rms_epsilon", Math.fround(1e-5)],
 *     ["tokenizer.ggml.model", "gpt2"], ["tokenizer.ggml.pre", "smollm"],
 *     ["tokenizer.ggml.tokens", ["<eos>", "1", "2", "12"]], ["tokenizer.ggml.token_type", [3, 1, 1, 1]],
 *     ["tokenizer.ggml.merges", ["1 2"]], ["tokenizer.ggml.eos_token_id", 0],
 *   ]),
 * };
 * const files = buildHfFiles(file);
 * const tokenizer = Tokenizer.fromJSON(files["tokenizer.json"], files["tokenizer_config.json"]);
 * assert.deepEqual(tokenizer.encode("12"), [1, 2]); // digits one by one, although "12" is a token
 * assert.equal(files["config.json"].rms_norm_eps, 1e-5);
 * ```
 */
export function buildHfFiles(file: GgufFile): HfFiles {
  return {
    "tokenizer.json": buildTokenizerJson(file),
    "tokenizer_config.json": buildTokenizerConfig(file),
    "config.json": buildConfigJson(file),
    "generation_config.json": buildGenerationConfig(file),
  };
}
