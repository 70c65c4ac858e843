import assert from "node:assert/strict";
import { checkAppend, checkFork, checkSelect } from "./model.ts";

const shape = { rows: 2, length: 3, vocabSize: 4, maxLength: 8 };

Deno.test("checkAppend returns the common row length of well-formed tokens", () => {
  assert.equal(checkAppend([[1, 2, 3], [0, 0, 0]], 3, shape), 3);
  assert.equal(checkAppend([Int32Array.of(1), Int32Array.of(2)], 1, shape), 1);
});

Deno.test("checkAppend rejects a token list count that differs from the rows held", () => {
  assert.throws(() => checkAppend([[1]], 1, shape), {
    name: "RangeError",
    message: /one token list per row \(2\), got 1/,
  });
});

Deno.test("checkAppend rejects ragged and empty rows", () => {
  assert.throws(() => checkAppend([[1, 2], [1]], 1, shape), { name: "RangeError", message: /row 1 has 1/ });
  assert.throws(() => checkAppend([[], []], 1, shape), { name: "RangeError", message: /at least 1 token/ });
});

Deno.test("checkAppend rejects token ids outside the vocabulary", () => {
  assert.throws(() => checkAppend([[1], [4]], 1, shape), {
    name: "RangeError",
    message: /token 0 of row 1 is 4/,
  });
  assert.throws(() => checkAppend([[-1], [0]], 1, shape), RangeError);
  assert.throws(() => checkAppend([[0.5], [0]], 1, shape), RangeError);
});

Deno.test("checkAppend rejects keep outside [1, T]", () => {
  assert.throws(() => checkAppend([[1, 2], [1, 2]], 0, shape), {
    name: "RangeError",
    message: /\[1, 2\], got 0/,
  });
  assert.throws(() => checkAppend([[1, 2], [1, 2]], 3, shape), RangeError);
});

Deno.test("checkAppend names the context limit when the rows would exceed it", () => {
  assert.equal(checkAppend([[1, 2, 3, 0, 1], [1, 2, 3, 0, 1]], 1, shape), 5);
  assert.throws(
    () => checkAppend([[1, 2, 3, 0, 1, 2], [1, 2, 3, 0, 1, 2]], 1, shape),
    { name: "RangeError", message: /3 held \+ 6 new exceeds the context limit of 8 tokens/ },
  );
});

Deno.test("checkFork requires exactly one row and a positive integer row count", () => {
  checkFork(1, 1);
  assert.throws(() => checkFork(3, 2), { name: "RangeError", message: /exactly 1 row, got 3/ });
  assert.throws(() => checkFork(1, 0), { name: "RangeError", message: /integer >= 1, got 0/ });
  assert.throws(() => checkFork(1, 1.5), RangeError);
});

Deno.test("checkSelect rejects rows and lengths out of range", () => {
  checkSelect(0, 0, shape);
  checkSelect(1, 3, shape);
  assert.throws(() => checkSelect(-1, 1, shape), { name: "RangeError", message: /\[0, 2\), got -1/ });
  assert.throws(() => checkSelect(0, 4, shape), { name: "RangeError", message: /\[0, 3\], got 4/ });
});
