// Test helpers for feature drafting: a toy proposer that reads the target's features (a Markov
// draft whose q depends on them), with switches for a misaligned variant (still exact) and a wrong
// one (reports a q it did not sample from). Not a public API.

import type { Kernel, Probs, WarpOptions } from "../kernel/types.ts";
import type { Random } from "../random.ts";
import type { DraftProposal, ProposalRequest, Proposer } from "./proposer.ts";

/** Options of {@linkcode ToyFeatureProposer}. */
export interface ToyFeatureProposerOptions {
  /** Order-1 draft logits `[vocab, vocab]` (row = the last token). */
  table: Float32Array;
  vocabSize: number;
  kernel: Kernel;
  warp?: WarpOptions;
  /** Floats per target feature (the toy Markov target's: 3, `[j, x_j, h_j]`). */
  featureSize?: number;
  /** Read the feature one position too early (row i − 1 for pending[i]): still exact, only less apt. */
  misaligned?: boolean;
  /** Report q without the feature term while sampling from q with it: inexact on purpose. */
  wrongQ?: boolean;
  /** Called with every pending list and its features before proposing. */
  record?: (pending: readonly number[], features: Float32Array) => void;
}

/** The feature term of the toy draft's logits: a bounded deterministic function of (h, x). */
function bias(h: number, x: number): number {
  return 1.5 * Math.sin(h * 0.61 + x * 1.7);
}

/**
 * A feature proposer on a toy Markov draft: q(x | last token t, feature h) ∝ exp(table[t][x] +
 * bias(h, x)) (warped), where h is the hash entry of the target's feature at the position before the
 * last pending token at depth 0, and the proposer's own chained hash at deeper depths (as an
 * EAGLE drafter feeds its own hidden state). Uniforms in DraftProposer's order. `rollback` returns
 * the accepted draft tokens.
 */
export class ToyFeatureProposer implements Proposer {
  readonly name = "toy-feature";
  readonly needsTargetFeatures = true;
  readonly vocabSize: number;
  calls = 0;
  readonly #o: ToyFeatureProposerOptions;
  readonly #f: number;
  #last: DraftProposal | undefined;
  #previous: Float32Array = new Float32Array(0);

  constructor(options: ToyFeatureProposerOptions) {
    this.#o = options;
    this.vocabSize = options.vocabSize;
    this.#f = options.featureSize ?? 3;
  }

  reset(): void {
    this.#last = undefined;
    this.#previous = new Float32Array(this.#f);
  }

  room(_known: number): number {
    return Infinity;
  }

  #q(last: number, h: number, withFeature: boolean): Probs {
    const v = this.vocabSize;
    const logits = new Float32Array(v);
    for (let x = 0; x < v; x++) logits[x] = this.#o.table[last * v + x] + (withFeature ? bias(h, x) : 0);
    return this.#o.kernel.warp(logits, this.#o.warp ?? {});
  }

  propose(
    pending: ArrayLike<number>,
    request: ProposalRequest,
    random: Random,
    features?: Float32Array,
  ): Promise<DraftProposal> {
    const f = this.#f, n = pending.length;
    if (!features || features.length !== n * f) {
      return Promise.reject(
        new RangeError(`Toy feature proposer: expected ${n}×${f} features, got ${features?.length}`),
      );
    }
    this.#o.record?.(Array.from(pending), features.slice());
    // The feature of the position before the last pending token (or one too early).
    const row = this.#o.misaligned ? n - 2 : n - 1;
    const feature = row >= 0 ? features.subarray(row * f, row * f + f) : this.#previous;
    this.#previous = features.slice((n - 1) * f, n * f);
    const h = feature[2];
    const { draftLength, sampling = "iid" } = request;
    let k = request.k;
    if (draftLength === 0) {
      this.#last = { k: 1, draftLength: 0, tokens: [new Int32Array(0)], probs: [[]] };
      return Promise.resolve(this.#last);
    }
    this.calls++;
    const kernel = this.#o.kernel;
    const last = pending[n - 1];
    const q0 = this.#q(last, h, true);
    const reported0 = this.#o.wrongQ ? this.#q(last, h, false) : q0;
    const withoutReplacement = sampling === "without-replacement";
    if (withoutReplacement) {
      let support = 0;
      for (let i = 0; i < q0.length; i++) if (q0[i] > 0) support++;
      k = Math.min(k, support);
    }
    const first = kernel.sample(q0, random.fill(new Float64Array(k)), withoutReplacement);
    const tokens: Int32Array[] = [];
    const probs: Probs[][] = [];
    const hashes: number[] = [];
    for (let r = 0; r < k; r++) {
      tokens.push(new Int32Array(draftLength));
      tokens[r][0] = first[r];
      probs.push([reported0]);
      hashes.push(h);
    }
    const u = [0];
    for (let t = 1; t < draftLength; t++) {
      if (t === 1) this.calls++;
      for (let r = 0; r < k; r++) {
        hashes[r] = (31 * hashes[r] + tokens[r][t - 1] + 7) % 65521; // the self-fed "hidden state"
        const q = this.#q(tokens[r][t - 1], hashes[r], true);
        probs[r].push(this.#o.wrongQ ? this.#q(tokens[r][t - 1], hashes[r], false) : q);
        u[0] = random.next();
        tokens[r][t] = kernel.sample(q, u)[0];
      }
    }
    this.#last = { k, draftLength, tokens, probs };
    return Promise.resolve(this.#last);
  }

  rollback(row: number, accepted: number): number[] {
    const last = this.#last;
    if (!last) throw new RangeError("Toy feature proposer: no block was proposed");
    this.#last = undefined;
    return Array.from(last.tokens[row].subarray(0, accepted));
  }
}

/** The toy Markov target's feature hash over a whole sequence (see MarkovModel's `features`). */
export function toyFeatureHash(tokens: readonly number[]): number {
  let h = 0;
  for (const x of tokens) h = (31 * h + x + 1) % 65521;
  return h;
}
