import assert from "node:assert/strict";
import { referenceKernel } from "../kernel/reference.ts";
import { Random } from "../random.ts";
import { kseq } from "../verify/kseq.ts";
import { AutoregressiveDecoder } from "./autoregressive.ts";
import { BlockDecoder, type BlockDecoderOptions } from "./decoder.ts";
import { ContextLimitError } from "./errors.ts";
import { MarkovModel, nearMarkovTable, randomMarkovTable } from "./markov.ts";
import type { CausalModel } from "./model.ts";

const V = 5;
const targetTable = randomMarkovTable(V, 1, 41, { maskProbability: 0.2 });
const draftTable = nearMarkovTable(targetTable, V, 42, { noise: 1, unmask: true });

function models(order: 1 | 2 = 1, maxLength = 1024) {
  const t = order === 1 ? targetTable : randomMarkovTable(V, 2, 43);
  const d = order === 1 ? draftTable : nearMarkovTable(t, V, 44);
  return {
    target: new MarkovModel({ table: t, vocabSize: V, order, maxLength }),
    draft: new MarkovModel({ table: d, vocabSize: V, order, maxLength }),
  };
}

function decoder(options: Partial<BlockDecoderOptions> = {}, order: 1 | 2 = 1) {
  return new BlockDecoder({
    ...models(order),
    kernel: referenceKernel,
    verifier: "kseq",
    k: 3,
    draftLength: 3,
    ...options,
  });
}

/** The target's greedy chain from a prompt (ties to the lowest id), computed from the table. */
function greedyChain(table: Float32Array, order: 1 | 2, prompt: number[], n: number): number[] {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) {
    const m = seq.length;
    const row = order === 1 ? seq[m - 1] : seq[m - 2] * V + seq[m - 1];
    const logits = table.subarray(row * V, row * V + V);
    let best = 0;
    for (let x = 1; x < V; x++) if (logits[x] > logits[best]) best = x;
    seq.push(best);
  }
  return seq.slice(prompt.length);
}

Deno.test("at temperature 0 every speculative method reproduces the target's greedy chain", async () => {
  const configs = [
    { verifier: "sd", k: 1, draftLength: 1 },
    { verifier: "sd", k: 1, draftLength: 4 },
    { verifier: "kseq", k: 3, draftLength: 3 },
    { verifier: "specinfer", k: 2, draftLength: 2 },
    { verifier: "specinfer-wor", k: 4, draftLength: 3 },
  ] as const;
  for (const order of [1, 2] as const) {
    const { target, draft } = models(order);
    const prompt = [1, 3];
    const expected = greedyChain(target.table, order, prompt, 20);
    for (const c of configs) {
      const dec = new BlockDecoder({
        target,
        draft,
        kernel: referenceKernel,
        ...c,
        warp: { temperature: 0 },
      });
      for (const seed of [1, 2, 3]) {
        const { tokens } = await dec.generate(prompt, { maxNewTokens: 20, seed });
        assert.deepEqual(tokens, expected, `${c.verifier} k=${c.k} L=${c.draftLength} order ${order}`);
      }
    }
  }
});

Deno.test("a block makes exactly one target call and L draft calls", async () => {
  const { target, draft } = models();
  const dec = new BlockDecoder({
    target,
    draft,
    kernel: referenceKernel,
    verifier: "kseq",
    k: 4,
    draftLength: 3,
  });
  const { tokens, stats } = await dec.generate([0], { maxNewTokens: 50, seed: 5 });
  assert.equal(tokens.length, 50);
  assert.equal(target.calls, stats.blocks);
  assert.equal(stats.targetCalls, stats.blocks);
  assert.equal(draft.calls, 3 * stats.blocks);
  assert.equal(stats.draftCalls, 3 * stats.blocks);
});

Deno.test("stats count reached and accepted depths consistently with the tokens", async () => {
  const { stats, tokens } = await decoder({ k: 2, draftLength: 4 }).generate([0], {
    maxNewTokens: 200,
    seed: 6,
  });
  assert.equal(stats.tokens, tokens.length);
  assert.equal(stats.reachedPerDepth[0], stats.blocks);
  for (let t = 0; t < 4; t++) {
    assert.ok(stats.acceptedPerDepth[t] <= stats.reachedPerDepth[t]);
    if (t > 0) assert.equal(stats.reachedPerDepth[t], stats.acceptedPerDepth[t - 1]);
    assert.equal(stats.acceptancePerDepth[t], stats.acceptedPerDepth[t] / stats.reachedPerDepth[t]);
  }
  // Every block yields its accepted tokens plus one; only the last block can be truncated.
  const untruncated = stats.blocks + stats.acceptedPerDepth.reduce((a, b) => a + b, 0);
  assert.ok(untruncated >= tokens.length && untruncated - tokens.length <= 4);
  assert.equal(stats.blockEfficiency, tokens.length / stats.targetCalls);
  for (const key of ["draftMs", "targetMs", "verifyMs", "totalMs"] as const) assert.ok(stats[key] >= 0);
  assert.ok(stats.totalMs >= stats.draftMs + stats.targetMs + stats.verifyMs - 1e-6);
});

Deno.test("identical target and draft accept every depth and yield L + 1 tokens per block", async () => {
  const target = new MarkovModel({ table: targetTable, vocabSize: V });
  const draft = new MarkovModel({ table: targetTable, vocabSize: V });
  const dec = new BlockDecoder({
    target,
    draft,
    kernel: referenceKernel,
    verifier: "kseq",
    k: 2,
    draftLength: 3,
  });
  const { stats } = await dec.generate([0], { maxNewTokens: 40, seed: 7 });
  assert.deepEqual(stats.acceptancePerDepth, [1, 1, 1]);
  assert.equal(stats.blocks, 10);
  assert.equal(stats.blockEfficiency, 4);
});

Deno.test("the same seed reproduces a run, and a Random can be passed instead", async () => {
  const dec = decoder();
  const a = await dec.generate([2], { maxNewTokens: 30, seed: 11 });
  const b = await dec.generate([2], { maxNewTokens: 30, seed: 11 });
  const c = await dec.generate([2], { maxNewTokens: 30, random: new Random(11) });
  assert.deepEqual(a.tokens, b.tokens);
  assert.deepEqual(a.tokens, c.tokens);
});

Deno.test("maxNewTokens truncates the last block to a prefix of the longer run", async () => {
  const dec = decoder({ draftLength: 4 });
  const long = await dec.generate([0], { maxNewTokens: 40, seed: 3 });
  for (const n of [0, 1, 2, 3, 7]) {
    const { tokens, stats } = await dec.generate([0], { maxNewTokens: n, seed: 3 });
    assert.deepEqual(tokens, long.tokens.slice(0, n));
    assert.equal(stats.stopReason, "maxNewTokens");
  }
  const none = await dec.generate([0], { maxNewTokens: 0, seed: 3 });
  assert.equal(none.stats.targetCalls, 0);
});

Deno.test("generation stops after the EOS token, which is included", async () => {
  const dec = decoder();
  const long = await dec.generate([0], { maxNewTokens: 60, seed: 9 });
  const eos = long.tokens[10];
  const first = long.tokens.indexOf(eos);
  const { tokens, stats } = await dec.generate([0], { maxNewTokens: 60, seed: 9, eosTokenId: eos });
  assert.deepEqual(tokens, long.tokens.slice(0, first + 1));
  assert.equal(stats.stopReason, "eos");
  const many = await dec.generate([0], { maxNewTokens: 60, seed: 9, eosTokenId: [99 % V, eos] });
  assert.ok(many.tokens.length <= first + 1);
});

Deno.test("an aborted signal stops generation with its reason", async () => {
  const dec = decoder();
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(dec.generate([0], { maxNewTokens: 5, seed: 1, signal: controller.signal }), {
    name: "AbortError",
  });
  const later = new AbortController();
  const seen: number[][] = [];
  const reason = new Error("stop now");
  await assert.rejects(async () => {
    for await (const block of dec.stream([0], { maxNewTokens: 100, seed: 1, signal: later.signal })) {
      seen.push(block);
      later.abort(reason);
    }
  }, (error) => error === reason);
  assert.equal(seen.length, 1);
});

Deno.test("stream yields each block's tokens and returns the full result", async () => {
  const dec = decoder();
  const gen = dec.stream([0], { maxNewTokens: 25, seed: 4 });
  const blocks: number[][] = [];
  let step = await gen.next();
  while (!step.done) {
    assert.ok(step.value.length >= 1 && step.value.length <= 4);
    blocks.push(step.value);
    step = await gen.next();
  }
  assert.deepEqual(blocks.flat(), step.value.tokens);
  assert.equal(blocks.length, step.value.stats.blocks);
  assert.deepEqual(step.value.tokens, (await dec.generate([0], { maxNewTokens: 25, seed: 4 })).tokens);
});

Deno.test("generation stops cleanly at the context limit without feeding a model past it", async () => {
  for (const draftLength of [1, 3, 4]) {
    const { target, draft } = models(1, 12);
    const dec = new BlockDecoder({
      target,
      draft,
      kernel: referenceKernel,
      verifier: "kseq",
      k: 2,
      draftLength,
    });
    for (const seed of [1, 2, 3, 4]) {
      const { tokens, stats } = await dec.generate([0, 1], { maxNewTokens: 100, seed });
      assert.equal(stats.stopReason, "length");
      const n = 2 + tokens.length;
      assert.ok(n >= 12 && n <= 13, `prompt + output = ${n}`);
      assert.ok(target.length <= 12 && draft.length <= 12);
    }
  }
});

Deno.test("a draft with a shorter context limit shrinks the last blocks", async () => {
  const target = new MarkovModel({ table: targetTable, vocabSize: V, maxLength: 50 });
  const draft = new MarkovModel({ table: draftTable, vocabSize: V, maxLength: 10 });
  const dec = new BlockDecoder({
    target,
    draft,
    kernel: referenceKernel,
    verifier: "kseq",
    k: 2,
    draftLength: 4,
  });
  const { tokens, stats } = await dec.generate([0], { maxNewTokens: 100, seed: 1 });
  assert.equal(stats.stopReason, "length");
  // The draft runs out at 10 fed tokens; the last block's bonus token and then one target-only
  // token (the target still has room) end it at 11 to 13.
  assert.ok(1 + tokens.length >= 11 && 1 + tokens.length <= 13, `prompt + output = ${1 + tokens.length}`);
  assert.ok(draft.length <= 10);
});

Deno.test("a prompt longer than the context limit is a RangeError naming the limit", async () => {
  const { target, draft } = models(1, 4);
  const dec = new BlockDecoder({
    target,
    draft,
    kernel: referenceKernel,
    verifier: "kseq",
    k: 2,
    draftLength: 2,
  });
  const error = await dec.generate([0, 1, 2, 3, 4], { maxNewTokens: 1, seed: 1 }).catch((e) => e);
  assert.ok(error instanceof ContextLimitError && error instanceof RangeError, String(error));
  assert.match(error.message, /prompt of 5 tokens exceeds the context limit of 4 tokens/);
  assert.equal(error.promptTokens, 5);
  assert.equal(error.maxLength, 4);
});

Deno.test("a prompt exactly as long as the context gives one token, as autoregressive does", async () => {
  const { target, draft } = models(1, 4);
  for (const seed of [1, 2, 3]) {
    const ar = await new AutoregressiveDecoder({ target, kernel: referenceKernel }).generate([0, 1, 2, 3], {
      maxNewTokens: 3,
      seed,
    });
    assert.equal(ar.tokens.length, 1);
    for (const [verifier, k] of [["sd", 1], ["kseq", 2], ["specinfer", 3]] as const) {
      const dec = new BlockDecoder({ target, draft, kernel: referenceKernel, verifier, k, draftLength: 2 });
      const full = await dec.generate([0, 1, 2, 3], { maxNewTokens: 3, seed });
      // The same first uniform drives the one target-only token, so the token is the same.
      assert.deepEqual(full.tokens, ar.tokens, `${verifier} seed ${seed}`);
      assert.equal(full.stats.stopReason, "length");
      assert.ok(target.length <= 4 && draft.length <= 4);
    }
  }
});

Deno.test("the decoder rejects invalid options", () => {
  const { target, draft } = models();
  const base = { target, draft, kernel: referenceKernel };
  assert.throws(() => new BlockDecoder({ ...base, verifier: "sd", k: 2 }), {
    name: "RangeError",
    message: /k must be an integer in \[1, 1\] for sd, got 2/,
  });
  assert.throws(() => new BlockDecoder({ ...base, verifier: "kseq", k: 0 }), {
    name: "RangeError",
    message: /k must be an integer/,
  });
  assert.throws(() => new BlockDecoder({ ...base, verifier: "kseq", k: 2.5 }), RangeError);
  assert.throws(() => new BlockDecoder({ ...base, verifier: "kseq", draftLength: 0 }), {
    name: "RangeError",
    message: /draftLength/,
  });
  assert.throws(() => new BlockDecoder({ ...base, verifier: "nope" as "sd" }), {
    name: "RangeError",
    message: /Unknown verifier/,
  });
  assert.throws(() => new BlockDecoder({ ...base, verifier: "kseq", warp: { temperature: -1 } }), RangeError);
  const small = new MarkovModel({ table: randomMarkovTable(3, 1, 1), vocabSize: 3 });
  assert.throws(() => new BlockDecoder({ ...base, draft: small, verifier: "kseq" }), {
    name: "RangeError",
    message: /draft vocabulary \(3\) differs from the target's \(5\)/,
  });
  const dec = new BlockDecoder({ ...base, verifier: kseq, k: 2 });
  assert.equal(dec.method, "kseq");
});

Deno.test("generate rejects bad prompts and options", async () => {
  const dec = decoder();
  await assert.rejects(dec.generate([], { maxNewTokens: 1, seed: 1 }), {
    name: "RangeError",
    message: /at least 1 token/,
  });
  await assert.rejects(dec.generate([V], { maxNewTokens: 1, seed: 1 }), {
    name: "RangeError",
    message: /outside the vocabulary/,
  });
  await assert.rejects(dec.generate([0], { maxNewTokens: -1, seed: 1 }), {
    name: "RangeError",
    message: /maxNewTokens/,
  });
  await assert.rejects(dec.generate([0], { maxNewTokens: 1, eosTokenId: V }), {
    name: "RangeError",
    message: /eosTokenId/,
  });
  const order2 = decoder({}, 2);
  await assert.rejects(order2.generate([0], { maxNewTokens: 1, seed: 1 }), {
    name: "RangeError",
    message: /2 tokens of context/,
  });
});

Deno.test("the decoder drives any CausalModel through the interface only", async () => {
  // A wrapper that hides the Markov class: only the interface members are reachable.
  const wrap = (m: MarkovModel): CausalModel => ({
    get vocabSize() {
      return m.vocabSize;
    },
    get maxLength() {
      return m.maxLength;
    },
    get rows() {
      return m.rows;
    },
    get length() {
      return m.length;
    },
    reset: () => m.reset(),
    fork: (r) => m.fork(r),
    append: (t, k) => m.append(t, k),
    select: (r, l) => m.select(r, l),
  });
  const { target, draft } = models();
  const dec = new BlockDecoder({
    target: wrap(target),
    draft: wrap(draft),
    kernel: referenceKernel,
    verifier: "specinfer-wor",
    k: 3,
    draftLength: 2,
  });
  const direct = new BlockDecoder({
    target,
    draft,
    kernel: referenceKernel,
    verifier: "specinfer-wor",
    k: 3,
    draftLength: 2,
  });
  const a = await dec.generate([0], { maxNewTokens: 30, seed: 2 });
  const b = await direct.generate([0], { maxNewTokens: 30, seed: 2 });
  assert.deepEqual(a.tokens, b.tokens);
});
