/**
 * Tokenizer layer: {@linkcode Tokenizer} (encode, decode, special ids), {@linkcode StreamingDetokenizer}
 * (incremental decoding without broken characters) and {@linkcode checkSameVocabulary} (draft/target guard).
 *
 * @example Encode, stream back, and check a draft
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkSameVocabulary, StreamingDetokenizer, Tokenizer } from "./mod.ts";
 *
 * const json = {
 *   model: { type: "BPE", vocab: { h: 0, i: 1, "Ġ": 2, hi: 3, "Ġhi": 4 }, merges: ["h i", "Ġ hi"] },
 *   pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, use_regex: true },
 *   decoder: { type: "ByteLevel" },
 * };
 * const target = Tokenizer.fromJSON(json);
 * checkSameVocabulary(target, Tokenizer.fromJSON(json));
 * const stream = new StreamingDetokenizer(target);
 * assert.deepEqual(stream.push(target.encode("hi hi")) + stream.flush(), "hi hi");
 * ```
 *
 * @module
 */
export { type DecodeOptions, type EncodeOptions, Tokenizer } from "./tokenizer.ts";
export { StreamingDetokenizer, type StreamingDetokenizerOptions } from "./stream.ts";
export { checkSameVocabulary, type CheckSameVocabularyOptions } from "./compat.ts";
