import assert from "node:assert/strict";
import { Random } from "../random.ts";
import { collect, OutputBuffer, resolveGenerate, throwIfAborted } from "./_generation.ts";

Deno.test("resolveGenerate fills defaults and keeps a given Random", () => {
  const random = new Random(1);
  const run = resolveGenerate(Int32Array.of(1, 2), { maxNewTokens: 4, random }, 3, 10);
  assert.deepEqual(run.prompt, [1, 2]);
  assert.equal(run.random, random);
  assert.equal(run.eos.size, 0);
  const seeded = resolveGenerate([0], { maxNewTokens: 1, seed: 5 }, 3, 10);
  assert.equal(seeded.random.next(), new Random(5).next());
});

Deno.test("the output buffer truncates at maxNewTokens across blocks", () => {
  const out = new OutputBuffer(4, new Set());
  assert.deepEqual(out.push([1, 2, 3]), [1, 2, 3]);
  assert.equal(out.stopReason, undefined);
  assert.deepEqual(out.push([4, 5]), [4]);
  assert.equal(out.stopReason, "maxNewTokens");
  assert.deepEqual(out.push([6]), []);
  assert.deepEqual(out.tokens, [1, 2, 3, 4]);
});

Deno.test("EOS as the last allowed token reports eos", () => {
  const out = new OutputBuffer(2, new Set([7]));
  out.push([1, 7]);
  assert.equal(out.stopReason, "eos");
});

Deno.test("throwIfAborted throws the given reason or an AbortError", () => {
  throwIfAborted(undefined);
  throwIfAborted(new AbortController().signal);
  const reason = new RangeError("why");
  assert.throws(() => throwIfAborted(AbortSignal.abort(reason)), (e) => e === reason);
  const c = new AbortController();
  c.abort();
  assert.throws(() => throwIfAborted(c.signal), (e) => e instanceof DOMException && e.name === "AbortError");
});

Deno.test("collect drains a stream and returns its value", async () => {
  async function* gen(): AsyncGenerator<number[], string> {
    yield [1];
    yield [2];
    return "done";
  }
  assert.equal(await collect(gen()), "done");
});

Deno.test("stopWhen stops with reason stop after the block that satisfied it", () => {
  const seen: number[][] = [];
  const out = new OutputBuffer(10, new Set(), (tokens) => {
    seen.push([...tokens]);
    return tokens.includes(5);
  });
  assert.deepEqual(out.push([1, 2]), [1, 2]);
  assert.equal(out.stopReason, undefined);
  assert.deepEqual(out.push([5, 6]), [5, 6]);
  assert.equal(out.stopReason, "stop");
  assert.deepEqual(seen, [[1, 2], [1, 2, 5, 6]]);
  assert.deepEqual(out.push([7]), []);
});

Deno.test("stopWhen must be a function", () => {
  assert.throws(
    () => resolveGenerate([1], { maxNewTokens: 1, stopWhen: 3 as unknown as () => boolean }, 4, 10),
    { name: "TypeError", message: /stopWhen must be a function/ },
  );
});
