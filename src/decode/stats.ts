/**
 * Counters and stage timings of one generation, as a plain record, and the recorder that fills it.
 *
 * @module
 */

/** Why a generation stopped. */
export type StopReason = "maxNewTokens" | "eos" | "length" | "stop";

/** What one generation did: counts, acceptance per depth and time per stage. */
export interface DecodeStats {
  /** Tokens returned (after truncation at maxNewTokens / EOS). */
  tokens: number;
  /** Blocks run (autoregressive: steps). */
  blocks: number;
  /**
   * Target model forwards (the model's own forward counter where it has one, else `append` calls).
   * The first block of a speculative generation on an ONNX model takes two: the shared prompt once,
   * then the k rows.
   */
  targetCalls: number;
  /** Draft model forwards (counted like `targetCalls`); 0 for autoregressive. */
  draftCalls: number;
  /**
   * Tokens per block, `tokens / blocks`: tokens per verification (per scoring call of the target,
   * leaving out the one-off prompt prefill); 1 for autoregressive; 0 when no block ran.
   */
  blockEfficiency: number;
  /** `acceptedPerDepth[t]`: blocks whose draft token at depth t was accepted. */
  acceptedPerDepth: number[];
  /** `reachedPerDepth[t]`: blocks that verified depth t (all earlier depths accepted). */
  reachedPerDepth: number[];
  /** `acceptedPerDepth[t] / reachedPerDepth[t]` (NaN where depth t was never reached). */
  acceptancePerDepth: number[];
  /** Time in the draft model and its sampling (propose and rollback), ms. */
  draftMs: number;
  /** Time in the target model (fork, the scoring forward, rollback), ms. */
  targetMs: number;
  /** Time verifying: warping the visited target rows, the verifier, the bonus draw, ms. */
  verifyMs: number;
  /**
   * Part of `targetMs` inside the target's forwards (its `forwardMs` counter, e.g.
   * `OnnxCausalLM`'s time in `session.run`), ms; NaN when the model does not count it.
   */
  targetForwardMs: number;
  /**
   * Part of `targetMs` spent keeping the target's KV cache (its `kvMs` counter: fork copies,
   * rollback crops, tree-path gathers, compactions), ms; NaN when the model does not count it.
   */
  targetKvMs: number;
  /** Part of `draftMs` inside the draft model's forwards (the proposer's `forwardMs`), ms; NaN when not counted. */
  draftForwardMs: number;
  /** Part of `draftMs` keeping the draft model's KV cache (the proposer's `kvMs`), ms; NaN when not counted. */
  draftKvMs: number;
  /**
   * Time in the kernel's `warp` (draft and target rows), ms, when the kernel counts it (a
   * `TimedKernel`, src/kernel/timed.ts); NaN otherwise.
   */
  warpMs: number;
  /** Part of `warpMs` spent while proposing (draft rows), ms; NaN when not counted. */
  draftWarpMs: number;
  /** Time in the kernel's `sample` (draft tokens, residual and bonus draws), ms; NaN when not counted. */
  sampleMs: number;
  /** Part of `sampleMs` spent while proposing (draft tokens), ms; NaN when not counted. */
  draftSampleMs: number;
  /** Wall time of the whole generation, ms. */
  totalMs: number;
  /** Why the generation stopped. */
  stopReason: StopReason;
  /**
   * The block configurations run, in order of first use, with how many blocks and tokens each gave
   * (one entry for a fixed method; several when `auto` chose per block; L = 0 is a target-only step).
   */
  plans: PlanCount[];
}

/** Time counters a model or proposer may keep (see {@linkcode StatsRecorder.profile}). */
export interface ProfiledModel {
  /** Time in forwards, ms. */
  readonly forwardMs?: number;
  /** Time keeping the KV cache, ms. */
  readonly kvMs?: number;
}

/** Time counters a kernel may keep (a `TimedKernel`). */
interface ProfiledKernel {
  readonly warpMs?: number;
  readonly sampleMs?: number;
}

/** How often one block configuration ran. */
export interface PlanCount {
  /** Verifier name (`autoregressive` for the autoregressive decoder). */
  method: string;
  /** Drafts proposed. */
  k: number;
  /** Draft length run. */
  draftLength: number;
  /** Blocks run with it. */
  blocks: number;
  /** Tokens those blocks output (before truncation at maxNewTokens / EOS). */
  tokens: number;
  /** Wall time of those blocks, each from the end of the previous block (event-loop turns included), ms. */
  ms: number;
  /** Measured tokens per second of those blocks: `tokens / ms · 1000`. */
  tokensPerSecond: number;
  /** A planner's mean predicted tokens per second for them (`auto`), else NaN. */
  predictedTokensPerSecond: number;
}

/**
 * Accumulates {@linkcode DecodeStats} while a decoder runs.
 *
 * @example Two blocks of draft length 2
 * ```ts
 * import { StatsRecorder } from "./stats.ts";
 * import assert from "node:assert/strict";
 * const rec = new StatsRecorder(2);
 * rec.recordBlock(2, 2); // both depths accepted
 * rec.recordBlock(1, 0); // depth 0 rejected
 * rec.targetCalls = 2;
 * const stats = rec.finish(4, "maxNewTokens");
 * assert.deepEqual(stats.reachedPerDepth, [2, 1]);
 * assert.deepEqual(stats.acceptancePerDepth, [0.5, 1]);
 * assert.equal(stats.blockEfficiency, 2);
 * ```
 */
export class StatsRecorder {
  /** Blocks run. */
  blocks = 0;
  /** Target forwards. */
  targetCalls = 0;
  /** Draft forwards. */
  draftCalls = 0;
  /** Draft time, ms. */
  draftMs = 0;
  /** Target time, ms. */
  targetMs = 0;
  /** Verification time, ms. */
  verifyMs = 0;
  /** Target forward time, ms (NaN: not counted). */
  targetForwardMs = 0;
  /** Target KV bookkeeping, ms (NaN: not counted). */
  targetKvMs = 0;
  /** Draft forward time, ms (NaN: not counted). */
  draftForwardMs = 0;
  /** Draft KV bookkeeping, ms (NaN: not counted). */
  draftKvMs = 0;
  /** Kernel warp time, ms (NaN: not counted). */
  warpMs = 0;
  /** Kernel warp time while proposing, ms. */
  draftWarpMs = 0;
  /** Kernel sample time, ms (NaN: not counted). */
  sampleMs = 0;
  /** Kernel sample time while proposing, ms. */
  draftSampleMs = 0;
  readonly #accepted: number[];
  readonly #reached: number[];
  readonly #plans = new Map<string, PlanCount>();
  readonly #start = performance.now();

  /** @param draftLength Depths tracked (L); 0 for autoregressive. */
  constructor(draftLength: number) {
    this.#accepted = new Array(draftLength).fill(0);
    this.#reached = new Array(draftLength).fill(0);
  }

  /**
   * Records one block.
   *
   * @param reached Depths verified (1..L).
   * @param accepted Draft tokens accepted (0..reached); a block with accepted < reached ended on a
   *   residual draw at depth `accepted`.
   * @param plan The block's plan (its verifier's name is recorded); autoregressive by default.
   * @param proposal The k and L actually proposed.
   * @param ms The block's wall time.
   */
  recordBlock(
    reached: number,
    accepted: number,
    plan: { verifier: { name: string }; predicted?: { tokens: number; ms: number } } = {
      verifier: { name: "autoregressive" },
    },
    proposal: { k: number; draftLength: number } = { k: 1, draftLength: 0 },
    ms = 0,
  ): void {
    this.blocks++;
    while (this.#reached.length < reached) {
      this.#reached.push(0);
      this.#accepted.push(0);
    }
    const key = `${plan.verifier.name} ${proposal.k} ${proposal.draftLength}`;
    let count = this.#plans.get(key);
    if (!count) {
      count = {
        method: plan.verifier.name,
        k: proposal.k,
        draftLength: proposal.draftLength,
        blocks: 0,
        tokens: 0,
        ms: 0,
        tokensPerSecond: NaN,
        predictedTokensPerSecond: NaN,
      };
      this.#plans.set(key, count);
    }
    count.blocks++;
    count.tokens += accepted + 1;
    count.ms += ms;
    count.tokensPerSecond = count.ms > 0 ? (count.tokens / count.ms) * 1000 : NaN;
    if (plan.predicted) {
      const rate = (plan.predicted.tokens / plan.predicted.ms) * 1000;
      const old = Number.isNaN(count.predictedTokensPerSecond) ? 0 : count.predictedTokensPerSecond;
      count.predictedTokensPerSecond = old + (rate - old) / count.blocks;
    }
    for (let t = 0; t < reached; t++) this.#reached[t]++;
    for (let t = 0; t < accepted; t++) this.#accepted[t]++;
  }

  /** Adds the time since `start` (a `performance.now()` value) to a stage, and returns now. */
  time(stage: "draftMs" | "targetMs" | "verifyMs", start: number): number {
    const now = performance.now();
    this[stage] += now - start;
    return now;
  }

  /**
   * Counts the forwards of `run` on `model` into `targetCalls` or `draftCalls`: the change of the
   * model's `calls` counter where it has one, else `fallback`.
   *
   * @param stage Which counter.
   * @param model The model (its optional `calls` counter).
   * @param run The work.
   * @param fallback Forwards to count when the model has no counter.
   */
  async count<T>(
    stage: "targetCalls" | "draftCalls",
    model: { readonly calls?: number },
    run: () => Promise<T>,
    fallback: number,
  ): Promise<T> {
    const before = model.calls;
    const result = await run();
    this[stage] += before === undefined || model.calls === undefined ? fallback : model.calls - before;
    return result;
  }

  /**
   * Runs `run` (a stage of one model) and adds the change of the model's `forwardMs` and `kvMs`
   * counters, and of the kernel's `warpMs` / `sampleMs` (a `TimedKernel`), to the stats; a counter
   * the object lacks makes the stat NaN.
   *
   * @param stage Whose counters: the target's or the draft's (the proposer's).
   * @param model The model or proposer (its optional `forwardMs`, `kvMs`); undefined: kernel only.
   * @param kernel The kernel (its optional `warpMs`, `sampleMs`).
   * @param run The work.
   */
  async profile<T>(
    stage: "target" | "draft",
    model: ProfiledModel | undefined,
    kernel: object,
    run: () => Promise<T>,
  ): Promise<T> {
    const before = this.#snapshot(model, kernel);
    const result = await run();
    this.#add(stage, model, kernel, before);
    return result;
  }

  /** {@linkcode StatsRecorder.profile} for synchronous work. */
  profileSync<T>(
    stage: "target" | "draft",
    model: ProfiledModel | undefined,
    kernel: object,
    run: () => T,
  ): T {
    const before = this.#snapshot(model, kernel);
    const result = run();
    this.#add(stage, model, kernel, before);
    return result;
  }

  #snapshot(model: ProfiledModel | undefined, kernel: object): (number | undefined)[] {
    const k = kernel as ProfiledKernel;
    return [model?.forwardMs, model?.kvMs, k.warpMs, k.sampleMs];
  }

  #add(
    stage: "target" | "draft",
    model: ProfiledModel | undefined,
    kernel: object,
    [f0, kv0, w0, s0]: (number | undefined)[],
  ): void {
    const k = kernel as ProfiledKernel;
    const diff = (a?: number, b?: number) => (a === undefined || b === undefined ? NaN : b - a);
    const warp = diff(w0, k.warpMs), sample = diff(s0, k.sampleMs);
    if (model) {
      const forward = diff(f0, model.forwardMs), kv = diff(kv0, model.kvMs);
      if (stage === "target") {
        this.targetForwardMs += forward;
        this.targetKvMs += kv;
      } else {
        this.draftForwardMs += forward;
        this.draftKvMs += kv;
      }
    }
    if (stage === "draft") {
      this.draftWarpMs += warp;
      this.draftSampleMs += sample;
    }
    this.warpMs += warp;
    this.sampleMs += sample;
  }

  /**
   * The final record.
   *
   * @param tokens Tokens returned.
   * @param stopReason Why the generation stopped.
   */
  finish(tokens: number, stopReason: StopReason): DecodeStats {
    return {
      tokens,
      blocks: this.blocks,
      targetCalls: this.targetCalls,
      draftCalls: this.draftCalls,
      blockEfficiency: this.blocks > 0 ? tokens / this.blocks : 0,
      acceptedPerDepth: this.#accepted.slice(),
      reachedPerDepth: this.#reached.slice(),
      acceptancePerDepth: this.#accepted.map((a, t) => (this.#reached[t] > 0 ? a / this.#reached[t] : NaN)),
      draftMs: this.draftMs,
      targetMs: this.targetMs,
      verifyMs: this.verifyMs,
      targetForwardMs: this.targetForwardMs,
      targetKvMs: this.targetKvMs,
      draftForwardMs: this.draftForwardMs,
      draftKvMs: this.draftKvMs,
      warpMs: this.warpMs,
      draftWarpMs: this.draftWarpMs,
      sampleMs: this.sampleMs,
      draftSampleMs: this.draftSampleMs,
      totalMs: performance.now() - this.#start,
      stopReason,
      plans: [...this.#plans.values()].map((c) => ({ ...c })),
    };
  }
}
