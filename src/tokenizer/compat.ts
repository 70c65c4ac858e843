/**
 * {@linkcode checkSameVocabulary}: guard that a draft and a target model share one vocabulary.
 *
 * @module
 */
import type { Tokenizer } from "./tokenizer.ts";

/** Options for {@linkcode checkSameVocabulary}. */
export interface CheckSameVocabularyOptions {
  /**
   * Compare every `stride`-th id (plus the last id and all special ids of both). 1 compares every id.
   *
   * @default {97}
   */
  stride?: number;
}

function _show(token: string | undefined): string {
  return token === undefined ? "(no token)" : JSON.stringify(token);
}

/**
 * Checks that a draft tokenizer has the target's vocabulary, as exact speculative decoding needs (the verifier
 * compares draft and target probabilities id by id): same vocabulary size, and the same token string at every
 * `stride`-th id, the last id, and every special id of either tokenizer (`<eos>` etc.). A deterministic sample,
 * not a proof: pass `{ stride: 1 }` to compare all ids.
 *
 * @param target The target model's tokenizer.
 * @param draft The draft model's tokenizer.
 * @param options See {@linkcode CheckSameVocabularyOptions}.
 * @throws {RangeError} Naming both sizes if they differ, or the first sampled id whose strings differ.
 *
 * @example Accept identical vocabularies, reject a changed token
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkSameVocabulary } from "./compat.ts";
 * import { Tokenizer } from "./tokenizer.ts";
 *
 * const json = { model: { type: "BPE", vocab: { a: 0, b: 1, ab: 2 }, merges: ["a b"] } };
 * const target = Tokenizer.fromJSON(json);
 * checkSameVocabulary(target, Tokenizer.fromJSON(json));
 * const other = Tokenizer.fromJSON({ model: { type: "BPE", vocab: { a: 0, c: 1, ac: 2 }, merges: ["a c"] } });
 * assert.throws(() => checkSameVocabulary(target, other, { stride: 1 }), RangeError);
 * ```
 */
export function checkSameVocabulary(
  target: Tokenizer,
  draft: Tokenizer,
  options: CheckSameVocabularyOptions = {},
): void {
  const { stride = 97 } = options;
  if (!Number.isInteger(stride) || stride < 1) {
    throw new RangeError(`Cannot compare vocabularies: stride must be a positive integer, got ${stride}`);
  }
  if (target.vocabSize !== draft.vocabSize) {
    throw new RangeError(
      `Cannot pair draft with target: vocabulary sizes differ, got target ${target.vocabSize} and draft ${draft.vocabSize}`,
    );
  }
  const ids = new Set<number>();
  for (let id = 0; id < target.vocabSize; id += stride) ids.add(id);
  if (target.vocabSize > 0) ids.add(target.vocabSize - 1);
  for (const t of [target, draft]) {
    for (const id of t.specialTokenIds) ids.add(id);
    for (const id of [t.eosTokenId, t.bosTokenId, t.padTokenId]) if (id !== undefined) ids.add(id);
  }
  for (const id of [...ids].sort((a, b) => a - b)) {
    const a = target.idToToken(id);
    const b = draft.idToToken(id);
    if (a !== b) {
      throw new RangeError(
        `Cannot pair draft with target: token strings differ at id ${id}, got target ${_show(a)} and draft ${
          _show(b)
        }`,
      );
    }
  }
}
