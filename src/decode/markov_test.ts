import assert from "node:assert/strict";
import { MarkovModel, nearMarkovTable, randomMarkovTable } from "./markov.ts";

// V = 3, order 1: row i of the table is [10i, 10i + 1, 10i + 2], so logits reveal the previous token.
const table1 = new Float32Array([0, 1, 2, 10, 11, 12, 20, 21, 22]);
// V = 2, order 2: row prev2·2 + prev1 holds [100·row, 100·row + 1].
const table2 = new Float32Array([0, 1, 100, 101, 200, 201, 300, 301]);

Deno.test("a new Markov model holds one empty row", () => {
  const model = new MarkovModel({ table: table1, vocabSize: 3 });
  assert.equal(model.rows, 1);
  assert.equal(model.length, 0);
  assert.equal(model.maxLength, 1024);
  assert.equal(model.calls, 0);
});

Deno.test("append returns the logits after the last keep tokens of every row", async () => {
  const model = new MarkovModel({ table: table1, vocabSize: 3 });
  const logits = await model.append([[0, 2, 1]], 2);
  assert.deepEqual([...logits], [20, 21, 22, 10, 11, 12]);
  assert.equal(model.length, 3);
  assert.equal(model.calls, 1);
});

Deno.test("an order-2 model reads the last two tokens of its row", async () => {
  const model = new MarkovModel({ table: table2, vocabSize: 2, order: 2 });
  const logits = await model.append([[1, 0, 1]], 2);
  assert.deepEqual([...logits], [200, 201, 100, 101]); // contexts (1,0) then (0,1)
});

Deno.test("an order-2 model needs two tokens of context before it gives logits", async () => {
  const model = new MarkovModel({ table: table2, vocabSize: 2, order: 2 });
  await assert.rejects(model.append([[1]], 1), {
    name: "RangeError",
    message: /needs 2 tokens of context, got 1/,
  });
  assert.equal(model.length, 0);
  await assert.rejects(model.append([[1, 0]], 2), RangeError);
  await model.append([[1, 0]], 1);
  assert.equal(model.length, 2);
});

Deno.test("fork copies row 0 and rows then grow independently", async () => {
  const model = new MarkovModel({ table: table1, vocabSize: 3 });
  await model.append([[0, 1]], 1);
  model.fork(3);
  assert.equal(model.rows, 3);
  const logits = await model.append([[0], [1], [2]], 1);
  assert.deepEqual([...logits], [0, 1, 2, 10, 11, 12, 20, 21, 22]);
  assert.deepEqual(model.tokens(0), [0, 1, 0]);
  assert.deepEqual(model.tokens(2), [0, 1, 2]);
});

Deno.test("select keeps one row cut to a length, and appending continues from it", async () => {
  const model = new MarkovModel({ table: table1, vocabSize: 3 });
  await model.append([[0]], 1);
  model.fork(2);
  await model.append([[1, 2], [2, 1]], 1);
  model.select(1, 2);
  assert.equal(model.rows, 1);
  assert.deepEqual(model.tokens(), [0, 2]);
  const logits = await model.append([[0]], 1);
  assert.deepEqual([...logits], [0, 1, 2]);
  assert.deepEqual(model.tokens(), [0, 2, 0]);
});

Deno.test("reset drops every row and token", async () => {
  const model = new MarkovModel({ table: table1, vocabSize: 3 });
  await model.append([[0, 1]], 1);
  model.fork(2);
  model.reset();
  assert.equal(model.rows, 1);
  assert.equal(model.length, 0);
});

Deno.test("append rejects bad arguments without changing the rows", async () => {
  const model = new MarkovModel({ table: table1, vocabSize: 3, maxLength: 4 });
  await model.append([[0]], 1);
  model.fork(2);
  await assert.rejects(model.append([[1]], 1), { name: "RangeError", message: /one token list per row/ });
  await assert.rejects(model.append([[1, 2], [1]], 1), {
    name: "RangeError",
    message: /rows must all have 2/,
  });
  await assert.rejects(model.append([[1], [3]], 1), {
    name: "RangeError",
    message: /outside the vocabulary \[0, 3\)/,
  });
  await assert.rejects(model.append([[1], [2]], 2), {
    name: "RangeError",
    message: /keep must be an integer in \[1, 1\]/,
  });
  await assert.rejects(
    model.append([[1, 1, 1, 1], [2, 2, 2, 2]], 1),
    { name: "RangeError", message: /context limit of 4 tokens/ },
  );
  assert.equal(model.length, 1);
  assert.equal(model.calls, 1);
});

Deno.test("fork and select reject bad arguments", async () => {
  const model = new MarkovModel({ table: table1, vocabSize: 3 });
  await model.append([[0, 1]], 1);
  assert.throws(() => model.select(1, 1), RangeError);
  assert.throws(() => model.select(0, 3), RangeError);
  model.fork(2);
  assert.throws(() => model.fork(2), { name: "RangeError", message: /exactly 1 row, got 2/ });
});

Deno.test("the constructor rejects bad tables and options", () => {
  assert.throws(() => new MarkovModel({ table: table1, vocabSize: 2 }), {
    name: "RangeError",
    message: /entries/,
  });
  assert.throws(() => new MarkovModel({ table: table1, vocabSize: 3, order: 3 as 1 }), RangeError);
  assert.throws(() => new MarkovModel({ table: table1, vocabSize: 3, maxLength: 0 }), RangeError);
  const masked = new Float32Array(9).fill(-Infinity);
  assert.throws(() => new MarkovModel({ table: masked, vocabSize: 3 }), {
    name: "RangeError",
    message: /all -Infinity/,
  });
  assert.throws(() => new MarkovModel({ table: [1, 2] as unknown as Float32Array, vocabSize: 1 }), TypeError);
});

Deno.test("random tables are reproducible and keep a finite entry in every row", () => {
  const a = randomMarkovTable(4, 2, 5, { maskProbability: 0.9 });
  assert.deepEqual(a, randomMarkovTable(4, 2, 5, { maskProbability: 0.9 }));
  for (let row = 0; row < 16; row++) assert.ok(a.subarray(row * 4, row * 4 + 4).some((x) => x > -Infinity));
  assert.notDeepEqual(a, randomMarkovTable(4, 2, 6, { maskProbability: 0.9 }));
});

Deno.test("a near table keeps the target's masks unless told to unmask them", () => {
  const target = randomMarkovTable(4, 1, 1, { maskProbability: 0.4 });
  const masked = [...target.keys()].filter((i) => target[i] === -Infinity);
  assert.ok(masked.length > 0);
  const near = nearMarkovTable(target, 4, 2);
  for (const i of masked) assert.equal(near[i], -Infinity);
  const unmasked = nearMarkovTable(target, 4, 2, { unmask: true });
  for (const i of masked) assert.ok(Number.isFinite(unmasked[i]));
});
