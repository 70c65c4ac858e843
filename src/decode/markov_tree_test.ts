// MarkovModel's tree scoring (appendTree / keepTreePath): exactly the row logits, the kept path's
// tokens, the pending-tree rule, the argument checks, and the `tree: false` switch.
import assert from "node:assert/strict";
import { Random } from "../random.ts";
import { MarkovModel, randomMarkovTable } from "./markov.ts";
import { checkAppendTree, checkKeepTreePath } from "./model.ts";

/** A random tree of `n` nodes (parents −1 or earlier), tokens in [0, vocab). */
function randomTree(random: Random, n: number, vocab: number): { tokens: number[]; parents: number[] } {
  const tokens: number[] = [], parents: number[] = [];
  for (let i = 0; i < n; i++) {
    tokens.push(Math.floor(random.next() * vocab));
    parents.push(Math.floor(random.next() * (i + 1)) - 1);
  }
  return { tokens, parents };
}

/** The root-to-node chain ending at `node`. */
function chainTo(parents: number[], node: number): number[] {
  const out: number[] = [];
  for (let j = node; j !== -1; j = parents[j]) out.unshift(j);
  return out;
}

for (const order of [1, 2] as const) {
  Deno.test(`order ${order}: appendTree gives every node the logits of its path as a row, in one call`, async () => {
    const V = 5, random = new Random(order * 17);
    const table = randomMarkovTable(V, order, 3);
    for (let trial = 0; trial < 30; trial++) {
      const tree = new MarkovModel({ table, vocabSize: V, order });
      const rows = new MarkovModel({ table, vocabSize: V, order, tree: false });
      const prompt = [1, 3, 0].slice(0, order + (trial % 2));
      await tree.append([prompt], 1);
      const { tokens, parents } = randomTree(random, 1 + (trial % 9), V);
      const calls = tree.calls;
      const got = await tree.appendTree(tokens, parents);
      assert.equal(tree.calls, calls + 1);
      assert.equal(tree.length, prompt.length, "pending: length unchanged");
      for (let i = 0; i < tokens.length; i++) {
        rows.reset();
        const path = chainTo(parents, i).map((j) => tokens[j]);
        const want = await rows.append([[...prompt, ...path]], 1);
        assert.deepEqual(got.subarray(i * V, (i + 1) * V), want, `trial ${trial} node ${i}`);
      }
      const keep = chainTo(parents, Math.floor(random.next() * tokens.length)).slice(0, 1 + (trial % 4));
      tree.keepTreePath(keep);
      assert.deepEqual(tree.tokens(), [...prompt, ...keep.map((j) => tokens[j])]);
    }
  });
}

Deno.test("after keepTreePath, append / fork / select work as on a model fed the path", async () => {
  const table = randomMarkovTable(4, 2, 9);
  const model = new MarkovModel({ table, vocabSize: 4, order: 2 });
  const direct = new MarkovModel({ table, vocabSize: 4, order: 2 });
  await model.append([[0, 1]], 1);
  //                     p  a  b  c  d      a b c / a d
  await model.appendTree([2, 3, 0, 1, 2], [-1, 0, 1, 2, 1]);
  model.keepTreePath([0, 1, 4]);
  await direct.append([[0, 1, 2, 3, 2]], 1);
  assert.deepEqual(model.tokens(), direct.tokens());
  assert.deepEqual(await model.append([[1, 0]], 2), await direct.append([[1, 0]], 2));
  model.fork(2);
  direct.fork(2);
  assert.deepEqual(await model.append([[1], [3]], 1), await direct.append([[1], [3]], 1));
  model.select(1, 6);
  direct.select(1, 6);
  assert.deepEqual(model.tokens(), direct.tokens());
  // an empty path keeps nothing
  await model.appendTree([1], [-1]);
  model.keepTreePath([]);
  assert.deepEqual(model.tokens(), direct.tokens());
});

Deno.test("a pending tree blocks append, fork, select and another tree with a RangeError; reset drops it", async () => {
  const model = new MarkovModel({ table: randomMarkovTable(3, 1, 1), vocabSize: 3 });
  await model.append([[0]], 1);
  await model.appendTree([1, 2], [-1, 0]);
  await assert.rejects(model.append([[1]], 1), { name: "RangeError", message: /a tree is pending/ });
  await assert.rejects(model.appendTree([1], [-1]), { name: "RangeError", message: /a tree is pending/ });
  assert.throws(() => model.fork(2), { name: "RangeError", message: /a tree is pending/ });
  assert.throws(() => model.select(0, 1), { name: "RangeError", message: /a tree is pending/ });
  assert.throws(() => model.keepTreePath([1]), { name: "RangeError", message: /root-to-node chain/ });
  assert.equal(model.calls, 2);
  model.reset();
  assert.deepEqual(model.tokens(), []);
  assert.throws(() => model.keepTreePath([]), { name: "RangeError", message: /no tree is pending/ });
  await model.append([[0]], 1);
});

Deno.test("appendTree rejects bad trees, more than one row, the context limit; NaN rows without order-2 context", async () => {
  const model = new MarkovModel({ table: randomMarkovTable(3, 1, 2), vocabSize: 3, maxLength: 5 });
  await model.append([[0, 1]], 1);
  const bad: [number[], number[], RegExp][] = [
    [[], [], /at least 1 node/],
    [[1], [], /one entry per node \(1\), got 0/],
    [[3], [-1], /token of node 0 is 3, outside the vocabulary \[0, 3\)/],
    [[1, 1], [-1, 1], /parent of node 1 must be -1 or an earlier node in \[0, 1\), got 1/],
    [[1, 1, 1, 1], [-1, 0, 1, 2], /2 held \+ depth 4 exceeds the context limit of 5 tokens/],
  ];
  for (const [tokens, parents, message] of bad) {
    await assert.rejects(model.appendTree(tokens, parents), { name: "RangeError", message });
  }
  await model.appendTree([1, 1, 1, 1, 1, 1], [-1, 0, 1, -1, 3, 0]); // depth 3: 2 + 3 = 5 fits
  model.keepTreePath([]);
  model.fork(2);
  await assert.rejects(model.appendTree([1], [-1]), { name: "RangeError", message: /exactly 1 row, got 2/ });
  const order2 = new MarkovModel({ table: randomMarkovTable(2, 2, 4), vocabSize: 2, order: 2 });
  // Order 2 from an empty cache: node 0 has 1 token of context, so no distribution (a NaN row, as
  // `append` returns no logits there); node 1 has 2 and its row is the table's row for (1, 0).
  const logits = await order2.appendTree([1, 0], [-1, 0]);
  assert.ok(logits.subarray(0, 2).every(Number.isNaN));
  assert.deepEqual([...logits.subarray(2, 4)], [
    ...order2.table.subarray((1 * 2 + 0) * 2, (1 * 2 + 0) * 2 + 2),
  ]);
});

Deno.test("tree: false turns tree scoring off; append / fork / select behave as before", async () => {
  const table = randomMarkovTable(3, 1, 5);
  const off = new MarkovModel({ table, vocabSize: 3, tree: false });
  const on = new MarkovModel({ table, vocabSize: 3 });
  assert.equal(off.supportsTree, false);
  assert.equal(on.supportsTree, true);
  await assert.rejects(off.appendTree([1], [-1]), { name: "RangeError", message: /tree scoring is off/ });
  assert.throws(() => off.keepTreePath([]), /no tree is pending/);
  for (const model of [off, on]) {
    await model.append([[0, 1]], 1);
    model.fork(2);
    await model.append([[2, 0], [1, 1]], 2);
    model.select(1, 3);
  }
  assert.deepEqual(off.tokens(), on.tokens());
  assert.equal(off.calls, on.calls);
});

Deno.test("checkAppendTree returns depths; checkKeepTreePath accepts exactly the root-to-node chains", () => {
  const shape = { rows: 1, length: 0, vocabSize: 9, maxLength: 4 };
  const parents = [-1, 0, 1, 0, -1, 4];
  assert.deepEqual([...checkAppendTree([1, 2, 3, 4, 5, 6], parents, shape)], [0, 1, 2, 1, 0, 1]);
  for (let node = 0; node < parents.length; node++) {
    const chain = chainTo(parents, node);
    for (let k = 0; k <= chain.length; k++) checkKeepTreePath(chain.slice(0, k), parents);
  }
  for (const wrong of [[1], [0, 2], [0, 3, 2], [4, 1], [0, 0], [6], [0, 1.5]]) {
    assert.throws(() => checkKeepTreePath(wrong, parents), RangeError, String(wrong));
  }
});
