import assert from "node:assert/strict";
import { referenceKernel } from "../kernel/reference.ts";
import { AutoregressiveDecoder } from "./autoregressive.ts";
import { MarkovModel, randomMarkovTable } from "./markov.ts";

const table = randomMarkovTable(4, 1, 51, { maskProbability: 0.2 });

Deno.test("autoregressive decoding makes one target call per token", async () => {
  const target = new MarkovModel({ table, vocabSize: 4 });
  const dec = new AutoregressiveDecoder({ target, kernel: referenceKernel });
  const { tokens, stats } = await dec.generate([0, 1], { maxNewTokens: 12, seed: 1 });
  assert.equal(tokens.length, 12);
  assert.equal(target.calls, 12);
  assert.equal(stats.targetCalls, 12);
  assert.equal(stats.blocks, 12);
  assert.equal(stats.draftCalls, 0);
  assert.equal(stats.blockEfficiency, 1);
  assert.deepEqual(stats.acceptedPerDepth, []);
  assert.deepEqual(target.tokens(), [0, 1, ...tokens.slice(0, -1)]);
});

Deno.test("autoregressive decoding at temperature 0 follows the greedy chain", async () => {
  const target = new MarkovModel({ table, vocabSize: 4 });
  const dec = new AutoregressiveDecoder({ target, kernel: referenceKernel, warp: { temperature: 0 } });
  const { tokens } = await dec.generate([2], { maxNewTokens: 8, seed: 1 });
  let prev = 2;
  for (const x of tokens) {
    const row = table.subarray(prev * 4, prev * 4 + 4);
    assert.equal(x, row.indexOf(Math.max(...row)));
    prev = x;
  }
});

Deno.test("autoregressive decoding stops at EOS, maxNewTokens, the context limit and abort", async () => {
  const target = new MarkovModel({ table, vocabSize: 4, maxLength: 6 });
  const dec = new AutoregressiveDecoder({ target, kernel: referenceKernel });
  const long = await dec.generate([0, 1], { maxNewTokens: 100, seed: 3 });
  assert.equal(long.stats.stopReason, "length");
  assert.equal(long.tokens.length, 5); // fed ≤ 6 tokens, the last output is predicted
  const eos = long.tokens[2];
  const stopped = await dec.generate([0, 1], { maxNewTokens: 100, seed: 3, eosTokenId: eos });
  assert.deepEqual(stopped.tokens, long.tokens.slice(0, long.tokens.indexOf(eos) + 1));
  assert.equal(stopped.stats.stopReason, "eos");
  const short = await dec.generate([0, 1], { maxNewTokens: 2, seed: 3 });
  assert.deepEqual(short.tokens, long.tokens.slice(0, 2));
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(dec.generate([0], { maxNewTokens: 2, signal: controller.signal }), {
    name: "AbortError",
  });
});
