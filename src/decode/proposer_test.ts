import assert from "node:assert/strict";
import { referenceKernel } from "../kernel/reference.ts";
import { Random } from "../random.ts";
import { MarkovModel, randomMarkovTable } from "./markov.ts";
import { DraftProposer } from "./proposer.ts";

Deno.test("the proposer makes one draft call per depth and holds k rows afterwards", async () => {
  const model = new MarkovModel({ table: randomMarkovTable(5, 1, 3), vocabSize: 5 });
  const proposer = new DraftProposer({ model, kernel: referenceKernel });
  const proposal = await proposer.propose([0, 1, 2], { k: 3, draftLength: 4 }, new Random(1));
  assert.equal(proposal.k, 3);
  assert.equal(model.calls, 4);
  assert.equal(model.rows, 3);
  assert.equal(model.length, 3 + 3); // pending + tokens at depths 0..L−2
  for (let r = 0; r < 3; r++) {
    assert.equal(proposal.tokens[r].length, 4);
    assert.equal(proposal.probs[r].length, 4);
    assert.equal(proposal.probs[r][0], proposal.probs[0][0]); // q₀ is shared
    assert.deepEqual(model.tokens(r).slice(3), [...proposal.tokens[r].slice(0, 3)]);
  }
});

Deno.test("each draft token has positive probability under the q row it was drawn from", async () => {
  const model = new MarkovModel({
    table: randomMarkovTable(4, 1, 8, { maskProbability: 0.4 }),
    vocabSize: 4,
  });
  const proposer = new DraftProposer({ model, kernel: referenceKernel });
  const random = new Random(2);
  for (let i = 0; i < 50; i++) {
    model.reset();
    const proposal = await proposer.propose([i % 4], { k: 4, draftLength: 3 }, random);
    for (let r = 0; r < proposal.k; r++) {
      for (let t = 0; t < 3; t++) assert.ok(proposal.probs[r][t][proposal.tokens[r][t]] > 0);
    }
  }
});

Deno.test("without replacement the depth-0 tokens are distinct and k is capped at q₀'s support", async () => {
  // V = 4, every row gives mass to tokens 1 and 3 only.
  const table = new Float32Array(16).fill(-Infinity);
  for (let row = 0; row < 4; row++) table[row * 4 + 1] = table[row * 4 + 3] = 0;
  const model = new MarkovModel({ table, vocabSize: 4 });
  const proposer = new DraftProposer({ model, kernel: referenceKernel });
  const proposal = await proposer.propose(
    [0],
    { k: 4, draftLength: 2, sampling: "without-replacement" },
    new Random(3),
  );
  assert.equal(proposal.k, 2);
  assert.deepEqual([proposal.tokens[0][0], proposal.tokens[1][0]].sort(), [1, 3]);
  assert.equal(model.rows, 2);
});

Deno.test("without replacement on a wide support, depth-0 tokens never repeat", async () => {
  const model = new MarkovModel({ table: randomMarkovTable(6, 1, 4), vocabSize: 6 });
  const proposer = new DraftProposer({ model, kernel: referenceKernel });
  const random = new Random(4);
  for (let i = 0; i < 100; i++) {
    model.reset();
    const proposal = await proposer.propose([i % 6], {
      k: 4,
      draftLength: 1,
      sampling: "without-replacement",
    }, random);
    assert.equal(new Set(proposal.tokens.map((row) => row[0])).size, 4);
  }
});

Deno.test("draft length 1 makes one call and no fork", async () => {
  const model = new MarkovModel({ table: randomMarkovTable(3, 1, 5), vocabSize: 3 });
  const proposer = new DraftProposer({ model, kernel: referenceKernel });
  const proposal = await proposer.propose([0], { k: 3, draftLength: 1 }, new Random(5));
  assert.equal(model.calls, 1);
  assert.equal(model.rows, 1);
  assert.deepEqual(proposer.rollback(2, 1), [proposal.tokens[2][0]]);
  assert.equal(model.length, 1);
});

Deno.test("rollback keeps the chosen row cut to the accepted tokens it was fed", async () => {
  const model = new MarkovModel({ table: randomMarkovTable(4, 1, 6), vocabSize: 4 });
  const proposer = new DraftProposer({ model, kernel: referenceKernel });
  let proposal = await proposer.propose([0, 1], { k: 2, draftLength: 3 }, new Random(6));
  assert.deepEqual(proposer.rollback(1, 1), []);
  assert.deepEqual(model.tokens(), [0, 1, proposal.tokens[1][0]]);
  proposal = await proposer.propose([2], { k: 2, draftLength: 3 }, new Random(7));
  // All 3 accepted: the draft was fed depths 0..1, so depth 2 is still pending.
  assert.deepEqual(proposer.rollback(0, 3), [proposal.tokens[0][2]]);
  assert.equal(model.length, 3 + 1 + 2);
  assert.throws(() => proposer.rollback(0, 0), { name: "RangeError", message: /no block was proposed/ });
});

Deno.test("the proposer rejects a non-integer or non-positive k, and a negative L", async () => {
  const model = new MarkovModel({ table: randomMarkovTable(3, 1, 5), vocabSize: 3 });
  const proposer = new DraftProposer({ model, kernel: referenceKernel });
  await assert.rejects(() => proposer.propose([0], { k: 0, draftLength: 2 }, new Random(1)), {
    name: "RangeError",
    message: /k must be an integer >= 1, got 0/,
  });
  await assert.rejects(() => proposer.propose([0], { k: 1.5, draftLength: 2 }, new Random(1)), RangeError);
  await assert.rejects(() => proposer.propose([0], { k: 1, draftLength: -1 }, new Random(1)), RangeError);
  assert.equal(model.calls, 0);
});

Deno.test("a request for L = 0 runs nothing and hands the pending tokens back on rollback", async () => {
  const model = new MarkovModel({ table: randomMarkovTable(3, 1, 5), vocabSize: 3 });
  const proposer = new DraftProposer({ model, kernel: referenceKernel });
  const empty = await proposer.propose([0, 1], { k: 2, draftLength: 0 }, new Random(1));
  assert.equal(empty.draftLength, 0);
  assert.equal(model.calls, 0);
  assert.deepEqual(proposer.rollback(0, 0), [0, 1]);
  await proposer.propose([0, 1, 2], { k: 1, draftLength: 1 }, new Random(1));
  assert.deepEqual(model.tokens(), [0, 1, 2]);
});
