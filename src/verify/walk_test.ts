import assert from "node:assert/strict";
import { referenceKernel } from "../kernel/reference.ts";
import type { Kernel, Probs } from "../kernel/types.ts";
import { Random } from "../random.ts";
import { kseq } from "./kseq.ts";
import type { LevelRule } from "./types.ts";
import type { DraftProposal } from "../decode/proposer.ts";
import { TargetScores } from "../decode/scorer.ts";
import { walkBlock } from "./walk.ts";

const uniform = new Float64Array([1 / 3, 1 / 3, 1 / 3]);

function proposal(tokens: number[][]): DraftProposal {
  return {
    k: tokens.length,
    draftLength: tokens[0].length,
    tokens: tokens.map((row) => Int32Array.from(row)),
    probs: tokens.map((row) => row.map(() => uniform)),
  };
}

/** Target scores of `k` drafts with L + 1 depths, every row uniform over V = 3. */
function uniformScores(k: number, depths: number): TargetScores {
  return new TargetScores(referenceKernel, {}, new Float32Array(k * depths * 3), k, depths, 3);
}

/** A verifier that records its calls and answers from a script. */
function scripted(answers: { token: number; draftIndex: number }[]) {
  const calls: { candidates: number[]; uniforms: number; p: Probs; q: Probs }[] = [];
  const verifier: LevelRule & { name: string } = {
    name: "kseq",
    select(_kernel: Kernel, p, q, candidates, uniforms) {
      calls.push({ candidates: Array.from(candidates), uniforms: uniforms.length, p, q });
      return answers[calls.length - 1];
    },
  };
  return { verifier, calls };
}

Deno.test("the walk narrows the candidates to the drafts that agree with the accepted prefix", () => {
  const drafts = proposal([[0, 1, 2], [1, 1, 1], [0, 2, 2], [0, 1, 0]]);
  const { verifier, calls } = scripted([
    { token: 0, draftIndex: 0 },
    { token: 1, draftIndex: 0 },
    { token: 0, draftIndex: 1 },
  ]);
  const block = walkBlock(referenceKernel, verifier, drafts, uniformScores(4, 4), new Random(1));
  assert.deepEqual(calls.map((c) => c.candidates), [[0, 1, 0, 0], [1, 2, 1], [2, 0]]);
  assert.deepEqual(calls.map((c) => c.uniforms), [5, 4, 3]);
  assert.equal(block.accepted, 3);
  assert.equal(block.reached, 3);
  assert.equal(block.row, 3);
  assert.equal(block.tokens.length, 4); // 3 accepted + bonus
  assert.deepEqual(block.tokens.slice(0, 3), [0, 1, 0]);
});

Deno.test("a residual draw ends the block at its depth", () => {
  const drafts = proposal([[2, 1], [1, 1]]);
  const { verifier, calls } = scripted([{ token: 1, draftIndex: 1 }, { token: 0, draftIndex: -1 }]);
  const block = walkBlock(referenceKernel, verifier, drafts, uniformScores(2, 3), new Random(1));
  assert.equal(calls.length, 2);
  assert.deepEqual(block, { tokens: [1, 0], accepted: 1, reached: 2, row: 1 });
});

Deno.test("a residual draw at depth 0 keeps row 0", () => {
  const { verifier } = scripted([{ token: 2, draftIndex: -1 }]);
  const block = walkBlock(
    referenceKernel,
    verifier,
    proposal([[0, 0], [1, 1]]),
    uniformScores(2, 3),
    new Random(1),
  );
  assert.deepEqual(block, { tokens: [2], accepted: 0, reached: 1, row: 0 });
});

Deno.test("the walk passes the first survivor's target and draft rows", () => {
  const drafts = proposal([[0, 1], [2, 1], [2, 0]]);
  const q1 = new Float64Array([0.2, 0.3, 0.5]);
  drafts.probs[1][1] = q1;
  const { verifier, calls } = scripted([{ token: 2, draftIndex: 1 }, { token: 0, draftIndex: -1 }]);
  const logits = new Float32Array(3 * 3 * 3);
  logits.set([0, 0, 5], (1 * 3 + 1) * 3); // draft 1, depth 1
  walkBlock(
    referenceKernel,
    verifier,
    drafts,
    new TargetScores(referenceKernel, {}, logits, 3, 3, 3),
    new Random(1),
  );
  assert.equal(calls[1].q, q1);
  assert.ok(calls[1].p[2] > 0.9);
});

Deno.test("the walk rejects a verifier that accepts a token no candidate holds", () => {
  const { verifier } = scripted([{ token: 2, draftIndex: 0 }]);
  assert.throws(
    () => walkBlock(referenceKernel, verifier, proposal([[0]]), uniformScores(1, 2), new Random(1)),
    { name: "RangeError", message: /no candidate holds/ },
  );
});

Deno.test("with the real K-SEQ verifier, identical one-hot target and draft accept every depth", () => {
  const oneHot = new Float64Array([0, 1, 0]);
  const drafts: DraftProposal = {
    k: 2,
    draftLength: 2,
    tokens: [Int32Array.of(1, 1), Int32Array.of(1, 1)],
    probs: [[oneHot, oneHot], [oneHot, oneHot]],
  };
  const logits = new Float32Array(2 * 3 * 3).fill(-Infinity);
  for (let i = 0; i < 6; i++) logits[i * 3 + 1] = 0;
  const block = walkBlock(
    referenceKernel,
    kseq,
    drafts,
    new TargetScores(referenceKernel, {}, logits, 2, 3, 3),
    new Random(1),
  );
  assert.deepEqual(block, { tokens: [1, 1, 1], accepted: 2, reached: 2, row: 0 });
});
