import assert from "node:assert/strict";
import { referenceKernel } from "../kernel/reference.ts";
import { MarkovModel } from "./markov.ts";
import { TargetScorer, TargetScores } from "./scorer.ts";

// V = 3, order 1: row i = [10i, 10i + 1, 10i + 2].
const table = new Float32Array([0, 1, 2, 10, 11, 12, 20, 21, 22]);

Deno.test("the scorer scores every draft at depths 0..L in one target call", async () => {
  const model = new MarkovModel({ table, vocabSize: 3, tree: false });
  const scorer = new TargetScorer({ model, kernel: referenceKernel });
  const scores = await scorer.score([0, 1], [Int32Array.of(2, 0), Int32Array.of(0, 1)], 2);
  assert.equal(model.calls, 1);
  assert.equal(model.rows, 2);
  // Row 0 context: after 1, after 2, after 0; row 1: after 1, after 0, after 1.
  assert.deepEqual([...scores.logits], [10, 11, 12, 20, 21, 22, 0, 1, 2, 10, 11, 12, 0, 1, 2, 10, 11, 12]);
});

Deno.test("the scorer scores only the first L tokens of longer drafts", async () => {
  const model = new MarkovModel({ table, vocabSize: 3 });
  const scorer = new TargetScorer({ model, kernel: referenceKernel });
  const scores = await scorer.score([0], [Int32Array.of(2, 1, 1)], 1);
  assert.equal(scores.logits.length, 2 * 3);
  assert.deepEqual(model.tokens(), [0, 2]);
});

Deno.test("rollback keeps the pending tokens and the accepted draft tokens of one row", async () => {
  const model = new MarkovModel({ table, vocabSize: 3, tree: false });
  const scorer = new TargetScorer({ model, kernel: referenceKernel });
  await scorer.score([0, 1], [Int32Array.of(2, 0), Int32Array.of(0, 1)], 2);
  scorer.rollback(1, 2);
  assert.deepEqual(model.tokens(), [0, 1, 0, 1]);
  await scorer.score([2], [Int32Array.of(1, 1)], 2);
  scorer.rollback(0, 0);
  assert.deepEqual(model.tokens(), [0, 1, 0, 1, 2]);
  assert.throws(() => scorer.rollback(0, 0), { name: "RangeError", message: /no block was scored/ });
});

Deno.test("target scores warp each visited row once and leave the others alone", () => {
  let warps = 0;
  const kernel = {
    ...referenceKernel,
    warp: (...args: Parameters<typeof referenceKernel.warp>) => (warps++, referenceKernel.warp(...args)),
  };
  const scores = new TargetScores(
    kernel,
    { temperature: 0 },
    new Float32Array([0, 1, 5, 0, 3, 4, 9, 8]),
    2,
    2,
    2,
  );
  assert.deepEqual([...scores.probs(1, 1)], [1, 0]);
  assert.equal(scores.probs(1, 1), scores.probs(1, 1));
  assert.equal(warps, 1);
  assert.deepEqual([...scores.probs(0, 1)], [1, 0]);
  assert.equal(warps, 2);
});

Deno.test("target scores reject logits of the wrong size", () => {
  assert.throws(() => new TargetScores(referenceKernel, {}, new Float32Array(5), 1, 2, 3), {
    name: "RangeError",
    message: /expected 1×2×3 = 6 logits, got 5/,
  });
});

Deno.test("with a tree-capable model, k drafts are one row of their merged tree, read back per draft", async () => {
  const model = new MarkovModel({ table, vocabSize: 3 });
  const rows = new MarkovModel({ table, vocabSize: 3, tree: false });
  const drafts = [Int32Array.of(2, 0, 1), Int32Array.of(2, 1, 1), Int32Array.of(0, 1, 2)];
  const tree = new TargetScorer({ model, kernel: referenceKernel });
  const plain = new TargetScorer({ model: rows, kernel: referenceKernel });
  assert.ok(tree.scoresTrees && !plain.scoresTrees);
  const a = await tree.score([0, 1], drafts, 3);
  const b = await plain.score([0, 1], drafts, 3);
  // pending 2 + unique nodes: 2, 2 0, 2 0 1, 2 1, 2 1 1, 0, 0 1, 0 1 2 = 8 (the rows path: 3 × 5)
  assert.deepEqual(tree.lastShape, { rows: 1, tokens: 10 });
  assert.deepEqual(plain.lastShape, { rows: 3, tokens: 5 });
  assert.equal(model.calls, 1);
  assert.equal(model.rows, 1);
  for (let r = 0; r < 3; r++) {
    for (let t = 0; t <= 3; t++) {
      assert.deepEqual([...a.probs(r, t)], [...b.probs(r, t)], `draft ${r} depth ${t}`);
    }
  }
  tree.rollback(1, 2); // keep draft 1's first two tokens
  plain.rollback(1, 2);
  assert.deepEqual(model.tokens(), [0, 1, 2, 1]);
  assert.deepEqual(model.tokens(), rows.tokens());
  // k = 1 keeps the plain row path.
  await tree.score([1], [Int32Array.of(0, 0)], 2);
  assert.deepEqual(tree.lastShape, { rows: 1, tokens: 3 });
  tree.rollback(0, 0);
  assert.deepEqual(model.tokens(), [0, 1, 2, 1, 1]);
});

Deno.test("tree scoring can be turned off", async () => {
  const model = new MarkovModel({ table, vocabSize: 3 });
  const scorer = new TargetScorer({ model, kernel: referenceKernel, tree: false });
  await scorer.score([0], [Int32Array.of(1), Int32Array.of(2)], 1);
  assert.equal(model.rows, 2);
});
