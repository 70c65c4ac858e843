import assert from "node:assert/strict";
import { referenceKernel } from "../kernel/reference.ts";
import type { Probs } from "../kernel/types.ts";
import { Random } from "../random.ts";
import { AutoregressiveDecoder } from "./autoregressive.ts";
import { BlockDecoder } from "./decoder.ts";
import { findContinuation, LookupProposer } from "./lookup.ts";
import { MarkovModel, randomMarkovTable } from "./markov.ts";
import type { DraftProposal } from "./proposer.ts";

const random = new Random(1);

/** The proposal's draft tokens as a plain array. */
const drafted = (proposal: DraftProposal) => Array.from(proposal.tokens[0]);

/** Asserts every q row is one-hot at its draft token. */
function assertOneHot(proposal: DraftProposal, vocab: number): void {
  assert.equal(proposal.probs[0].length, proposal.draftLength);
  for (let t = 0; t < proposal.draftLength; t++) {
    const q: Probs = proposal.probs[0][t];
    assert.equal(q.length, vocab);
    for (let x = 0; x < vocab; x++) assert.equal(q[x], x === proposal.tokens[0][t] ? 1 : 0);
  }
}

Deno.test("no match: a proposal of length 0, and rollback hands nothing back", async () => {
  const proposer = new LookupProposer({ vocabSize: 8 });
  const proposal = await proposer.propose([0, 1, 2, 3], { k: 1, draftLength: 4 }, random);
  assert.equal(proposal.k, 1);
  assert.equal(proposal.draftLength, 0);
  assert.deepEqual(drafted(proposal), []);
  assert.deepEqual(proposal.probs, [[]]);
  assert.deepEqual(proposer.rollback(0, 0), []);
  assert.deepEqual(proposer.history, [0, 1, 2, 3]);
  assert.equal(findContinuation([0, 1, 2, 3], 4), undefined);
  // A single token has no earlier position to match.
  const one = new LookupProposer({ vocabSize: 8 });
  assert.equal((await one.propose([5], { k: 1, draftLength: 3 }, random)).draftLength, 0);
});

Deno.test("one match: the continuation, cut at the end of the history, with one-hot q rows", async () => {
  const proposer = new LookupProposer({ vocabSize: 10, minNgram: 1 });
  // Suffix [5] (no 3- or 2-gram recurs) occurred at 0; what followed it is 6 7 8 5, then the end.
  const proposal = await proposer.propose([5, 6, 7, 8, 5], { k: 1, draftLength: 10 }, random);
  assert.deepEqual(drafted(proposal), [6, 7, 8, 5]);
  assert.equal(proposal.draftLength, 4);
  assertOneHot(proposal, 10);
  assert.deepEqual(findContinuation([5, 6, 7, 8, 5], 10, 3, 1), { ngram: 1, start: 1, tokens: [6, 7, 8, 5] });
});

Deno.test("by default 1-gram matches are left out (minNgram 2)", async () => {
  const proposer = new LookupProposer({ vocabSize: 10 });
  assert.equal(proposer.minNgram, 2);
  assert.equal(proposer.maxNgram, 3);
  assert.equal((await proposer.propose([5, 6, 7, 8, 5], { k: 1, draftLength: 4 }, random)).draftLength, 0);
  assert.equal(findContinuation([5, 6, 7, 8, 5], 4), undefined);
  // The bigram 8 5 recurs: drafted.
  assert.deepEqual(drafted(await proposer.propose([6, 7, 8, 5], { k: 1, draftLength: 2 }, random)), [6, 7]);
});

Deno.test("the continuation is cut at the draft length asked for", async () => {
  const proposer = new LookupProposer({ vocabSize: 10, minNgram: 1 });
  const proposal = await proposer.propose([5, 6, 7, 8, 5], { k: 1, draftLength: 2 }, random);
  assert.deepEqual(drafted(proposal), [6, 7]);
  assertOneHot(proposal, 10);
});

Deno.test("a request for L = 0 proposes nothing but takes the pending tokens in", async () => {
  const proposer = new LookupProposer({ vocabSize: 10 });
  const proposal = await proposer.propose([5, 6, 5], { k: 1, draftLength: 0 }, random);
  assert.equal(proposal.draftLength, 0);
  assert.deepEqual(proposer.rollback(0, 0), []);
  assert.deepEqual(proposer.history, [5, 6, 5]);
  assert.equal(proposer.matched, 0);
  assert.equal(proposer.proposals, 1);
});

Deno.test("several matches of the same n: the most recent one followed by L tokens, else the earliest", async () => {
  // The bigram 1 2 occurs at 0 and 3 before the suffix: 7 tokens follow the first, 4 the second.
  const history = [1, 2, 7, 1, 2, 8, 9, 1, 2];
  const propose = async (draftLength: number) => {
    const proposer = new LookupProposer({ vocabSize: 10, maxNgram: 2, minNgram: 2 });
    return drafted(await proposer.propose(history, { k: 1, draftLength }, random));
  };
  // L = 3: both are followed by 3 tokens; the later one wins.
  assert.deepEqual(await propose(3), [8, 9, 1]);
  assert.deepEqual(findContinuation(history, 3, 2, 2), { ngram: 2, start: 5, tokens: [8, 9, 1] });
  // L = 4: the later one is followed by exactly 4 (up to the end of the history).
  assert.deepEqual(await propose(4), [8, 9, 1, 2]);
  // L = 5: only the earlier one is followed by 5 tokens.
  assert.deepEqual(await propose(5), [7, 1, 2, 8, 9]);
  assert.equal(findContinuation(history, 5, 2, 2)?.start, 2);
  // L = 8: neither is; the earliest gives the longest continuation, cut at the end of the history.
  assert.deepEqual(await propose(8), [7, 1, 2, 8, 9, 1, 2]);
});

Deno.test("a longer match beats a more recent shorter one", async () => {
  // 3-gram 9 1 2 at 0 (followed by 4 0); the 1-gram 2 recurs later, at 5 (followed by 5).
  const history = [9, 1, 2, 4, 0, 2, 5, 9, 1, 2];
  const proposer = new LookupProposer({ vocabSize: 10 });
  assert.deepEqual(drafted(await proposer.propose(history, { k: 1, draftLength: 2 }, random)), [4, 0]);
  assert.equal(findContinuation(history, 2)?.ngram, 3);
  // With n capped at 1, the most recent 1-gram wins instead.
  const short = new LookupProposer({ vocabSize: 10, maxNgram: 1, minNgram: 1 });
  assert.deepEqual(drafted(await short.propose(history, { k: 1, draftLength: 2 }, random)), [5, 9]);
});

Deno.test("n-gram fallback from long to short, and nothing below minNgram", async () => {
  // Suffix 3 1 2: the 3-gram never recurs, the 2-gram 1 2 does (followed by 6).
  const history = [0, 1, 2, 6, 4, 2, 7, 3, 1, 2];
  const proposer = new LookupProposer({ vocabSize: 10 });
  assert.deepEqual(drafted(await proposer.propose(history, { k: 1, draftLength: 1 }, random)), [6]);
  assert.equal(findContinuation(history, 1)?.ngram, 2);
  // Suffix 5 7: only the 1-gram 7 recurs, which minNgram 2 rules out.
  const strict = new LookupProposer({ vocabSize: 10, maxNgram: 3, minNgram: 2 });
  const none = await strict.propose([7, 1, 2, 5, 7], { k: 1, draftLength: 3 }, random);
  assert.equal(none.draftLength, 0);
  const loose = new LookupProposer({ vocabSize: 10, maxNgram: 3, minNgram: 1 });
  assert.deepEqual(drafted(await loose.propose([7, 1, 2, 5, 7], { k: 1, draftLength: 3 }, random)), [
    1,
    2,
    5,
  ]);
});

Deno.test("a self-overlapping match continues into the suffix and stops at the end of the history", async () => {
  // Suffix 0 0 0: its one earlier occurrence (at 0) is followed by one token.
  const proposer = new LookupProposer({ vocabSize: 4 });
  assert.deepEqual(drafted(await proposer.propose([0, 0, 0, 0], { k: 1, draftLength: 5 }, random)), [0]);
  // Periodic text: the latest occurrence is followed by one period only; an earlier one by L tokens.
  const periodic = new LookupProposer({ vocabSize: 4 });
  const proposal = await periodic.propose(
    [3, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2],
    { k: 1, draftLength: 4 },
    random,
  );
  assert.deepEqual(drafted(proposal), [1, 2, 1, 2]);
  assert.equal(findContinuation([3, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2], 4)?.start, 7); // not 9, one period back
});

Deno.test("the history after rollbacks is the prompt plus the accepted tokens", async () => {
  const proposer = new LookupProposer({ vocabSize: 10, minNgram: 1 });
  let proposal = await proposer.propose([1, 2, 3, 4, 1], { k: 1, draftLength: 3 }, random);
  assert.deepEqual(drafted(proposal), [2, 3, 4]);
  // Two of three accepted; the verifier then output 9 (a recovered token).
  const back = proposer.rollback(0, 2);
  assert.deepEqual(back, [2, 3]);
  assert.deepEqual(proposer.history, [1, 2, 3, 4, 1]); // drafts are not taken in by themselves
  proposal = await proposer.propose([...back, 9], { k: 1, draftLength: 3 }, random);
  assert.deepEqual(proposer.history, [1, 2, 3, 4, 1, 2, 3, 9]);
  assert.equal(proposal.draftLength, 0); // 9 is new, 3 9 and 2 3 9 too
  assert.deepEqual(proposer.rollback(0, 0), []);
  // All accepted: every draft token comes back.
  proposal = await proposer.propose([3], { k: 1, draftLength: 2 }, random);
  // Suffix 3 9 3 and 9 3 are new; the 1-gram 3 last occurred at 6, followed by 9 3.
  assert.deepEqual(drafted(proposal), [9, 3]);
  assert.deepEqual(proposer.rollback(0, 2), [9, 3]);
  await proposer.propose([9, 3, 4], { k: 1, draftLength: 0 }, random);
  assert.deepEqual(proposer.history, [1, 2, 3, 4, 1, 2, 3, 9, 3, 9, 3, 4]);
  proposer.reset();
  assert.deepEqual(proposer.history, []);
  assert.equal(proposer.proposals, 0);
});

Deno.test("rollback checks its arguments", async () => {
  const proposer = new LookupProposer({ vocabSize: 10, minNgram: 1 });
  assert.throws(() => proposer.rollback(0, 0), { name: "RangeError", message: /no block was proposed/ });
  await proposer.propose([1, 2, 1], { k: 1, draftLength: 2 }, random);
  assert.throws(() => proposer.rollback(1, 0), {
    name: "RangeError",
    message: /one draft \(row 0\), got row 1/,
  });
  assert.throws(() => proposer.rollback(0, 3), {
    name: "RangeError",
    message: /accepted must be an integer in \[0, 2\], got 3/,
  });
  assert.deepEqual(proposer.rollback(0, 1), [2]);
  assert.throws(() => proposer.rollback(0, 0), { name: "RangeError", message: /no block was proposed/ });
});

Deno.test("k > 1 is answered with one draft", async () => {
  const proposer = new LookupProposer({ vocabSize: 10, minNgram: 1 });
  const proposal = await proposer.propose([1, 2, 1], {
    k: 4,
    draftLength: 2,
    sampling: "without-replacement",
  }, random);
  assert.equal(proposal.k, 1);
  assert.equal(proposal.tokens.length, 1);
  assert.deepEqual(drafted(proposal), [2, 1]);
});

Deno.test("the proposer rejects bad options and bad requests with RangeErrors naming them", async () => {
  assert.throws(() => new LookupProposer({ vocabSize: 0 }), {
    name: "RangeError",
    message: /vocabSize must be an integer >= 1, got 0/,
  });
  assert.throws(() => new LookupProposer({ vocabSize: 4, minNgram: 0 }), {
    name: "RangeError",
    message: /minNgram must be an integer >= 1, got 0/,
  });
  assert.throws(() => new LookupProposer({ vocabSize: 4, minNgram: 3, maxNgram: 2 }), {
    name: "RangeError",
    message: /maxNgram must be an integer >= 3, got 2/,
  });
  assert.throws(() => new LookupProposer({ vocabSize: 4, maxNgram: 2.5 }), {
    name: "RangeError",
    message: /maxNgram/,
  });
  assert.throws(() => new LookupProposer({ vocabSize: 4, cachedRows: -1 }), {
    name: "RangeError",
    message: /cachedRows must be an integer >= 0/,
  });
  assert.throws(() => new LookupProposer(null as never), TypeError);
  const proposer = new LookupProposer({ vocabSize: 4 });
  await assert.rejects(() => proposer.propose([0], { k: 0, draftLength: 2 }, random), {
    name: "RangeError",
    message: /k must be an integer >= 1, got 0/,
  });
  await assert.rejects(() => proposer.propose([0], { k: 1, draftLength: -1 }, random), {
    name: "RangeError",
    message: /draftLength must be an integer >= 0, got -1/,
  });
  await assert.rejects(() => proposer.propose([0, 4], { k: 1, draftLength: 1 }, random), {
    name: "RangeError",
    message: /pending token 1 is 4, outside \[0, 4\)/,
  });
  assert.deepEqual(proposer.history, []); // nothing taken in from a rejected call
  assert.equal(proposer.room(1e9), Infinity);
  assert.equal(proposer.calls, 0);
  assert.equal(proposer.name, "lookup");
});

Deno.test("q rows are shared per token id up to cachedRows (least recently used out), fresh with 0", async () => {
  const request = { k: 1, draftLength: 2 };
  const cached = new LookupProposer({ vocabSize: 10, minNgram: 1, cachedRows: 2 });
  const a = await cached.propose([1, 2, 3, 1], request, random);
  assert.deepEqual(drafted(a), [2, 3]);
  cached.reset(); // the history goes, the cache of one-hot rows stays
  const b = await cached.propose([1, 2, 3, 1], request, random);
  assert.equal(b.probs[0][0], a.probs[0][0]);
  assert.equal(b.probs[0][1], a.probs[0][1]);
  cached.reset();
  const c = await cached.propose([4, 5, 4], { k: 1, draftLength: 1 }, random);
  assert.deepEqual(drafted(c), [5]); // the row of 5 pushes out the row of 2, used least recently
  cached.reset();
  const d = await cached.propose([2, 3, 2], { k: 1, draftLength: 1 }, random);
  assert.deepEqual(drafted(d), [3]);
  assert.equal(d.probs[0][0], a.probs[0][1]); // still cached
  cached.reset();
  const e = await cached.propose([1, 2, 1], { k: 1, draftLength: 1 }, random);
  assert.deepEqual(drafted(e), [2]);
  assert.notEqual(e.probs[0][0], a.probs[0][0]); // evicted, made again
  assertOneHot(e, 10);
  // Within a proposal, a repeated id shares its row; with cachedRows 0 each token gets its own.
  const history = [5, 1, 2, 1, 2, 7, 5];
  const shared = await new LookupProposer({ vocabSize: 10, minNgram: 1 }).propose(
    history,
    { k: 1, draftLength: 4 },
    random,
  );
  assert.deepEqual(drafted(shared), [1, 2, 1, 2]);
  assert.equal(shared.probs[0][0], shared.probs[0][2]);
  const fresh = await new LookupProposer({ vocabSize: 10, minNgram: 1, cachedRows: 0 }).propose(history, {
    k: 1,
    draftLength: 4,
  }, random);
  assert.deepEqual(drafted(fresh), [1, 2, 1, 2]);
  assert.notEqual(fresh.probs[0][0], fresh.probs[0][2]);
  assertOneHot(fresh, 10);
});

Deno.test("the n-gram index agrees with the plain backward scan on random histories", async () => {
  const r = new Random(42);
  for (const [vocab, maxNgram, minNgram] of [[2, 3, 1], [3, 4, 2], [5, 2, 1], [4, 5, 5]]) {
    for (let trial = 0; trial < 20; trial++) {
      const proposer = new LookupProposer({ vocabSize: vocab, maxNgram, minNgram, cachedRows: 1 });
      const history: number[] = [];
      for (let step = 0; step < 60; step++) {
        const token = Math.floor(r.next() * vocab);
        history.push(token);
        const length = 1 + Math.floor(r.next() * 6);
        const proposal = await proposer.propose([token], { k: 1, draftLength: length }, r);
        const expected = findContinuation(history, length, maxNgram, minNgram)?.tokens ?? [];
        assert.deepEqual(drafted(proposal), expected, `history ${history} length ${length}`);
        assertOneHot(proposal, vocab);
        assert.deepEqual(proposer.rollback(0, 0), []);
      }
      assert.deepEqual(proposer.history, history);
    }
  }
});

/** V = 5, order 1, with masked transitions, so that an impossible output would be visible. */
function maskedChain(seed: number): { table: Float32Array; vocab: number } {
  return { table: randomMarkovTable(5, 1, seed, { scale: 2, maskProbability: 0.3 }), vocab: 5 };
}

for (const verifier of ["sd", "block", "kseq"]) {
  Deno.test(`end to end with ${verifier}: a valid sequence, no draft calls, the history is the accepted text`, async () => {
    const { table, vocab } = maskedChain(3);
    const target = new MarkovModel({ table, vocabSize: vocab });
    const proposer = new LookupProposer({ vocabSize: vocab });
    const decoder = new BlockDecoder({
      target,
      proposer,
      kernel: referenceKernel,
      verifier,
      k: verifier === "kseq" ? 3 : 1,
      draftLength: 4,
    });
    const prompt = [0, 1, 2, 0, 1];
    const { tokens, stats } = await decoder.generate(prompt, { maxNewTokens: 200, seed: 11 });
    assert.equal(tokens.length, 200);
    const all = [...prompt, ...tokens];
    for (let i = prompt.length; i < all.length; i++) {
      assert.ok(all[i] >= 0 && all[i] < vocab);
      assert.ok(Number.isFinite(table[all[i - 1] * vocab + all[i]]), `impossible transition at ${i}`);
    }
    assert.equal(stats.draftCalls, 0);
    assert.ok(stats.blocks < 200, "some drafts were accepted");
    assert.equal(proposer.proposals, stats.blocks);
    assert.equal(stats.plans.reduce((n, p) => n + p.blocks, 0), stats.blocks);
    assert.ok(stats.plans.every((p) => p.k === 1));
    // The proposer saw every block's pending tokens but the last block's.
    const history = proposer.history;
    assert.deepEqual(history, all.slice(0, history.length));
    assert.ok(history.length >= prompt.length + 200 - 5);
    // The shared one-hot rows came out of 200 tokens of verification untouched.
    assertOneHot(await proposer.propose([0, 1, 2, 3, 4], { k: 1, draftLength: 4 }, random), vocab);
  });
}

Deno.test("greedy (T = 0) lookup decoding gives exactly the autoregressive sequence", async () => {
  const { table, vocab } = maskedChain(5);
  const prompt = [0, 3, 1, 4, 0, 3];
  for (const verifier of ["sd", "block"]) {
    const target = new MarkovModel({ table, vocabSize: vocab });
    const ar = await new AutoregressiveDecoder({ target, kernel: referenceKernel, warp: { temperature: 0 } })
      .generate(prompt, { maxNewTokens: 60, seed: 1 });
    const decoder = new BlockDecoder({
      target: new MarkovModel({ table, vocabSize: vocab }),
      proposer: new LookupProposer({ vocabSize: vocab }),
      kernel: referenceKernel,
      verifier,
      draftLength: 6,
      warp: { temperature: 0 },
    });
    const { tokens, stats } = await decoder.generate(prompt, { maxNewTokens: 60, seed: 2 });
    assert.deepEqual(tokens, ar.tokens, verifier);
    // A greedy order-1 chain ends in a cycle, which lookup drafts in full.
    assert.ok(stats.blockEfficiency > 3, `${verifier}: block efficiency ${stats.blockEfficiency}`);
  }
});

Deno.test("no match in the decoder: the block is one target-only token", async () => {
  const { table, vocab } = maskedChain(3);
  const target = new MarkovModel({ table, vocabSize: vocab });
  const proposer = new LookupProposer({ vocabSize: vocab });
  const decoder = new BlockDecoder({
    target,
    proposer,
    kernel: referenceKernel,
    verifier: "block",
    draftLength: 4,
  });
  // One prompt token: nothing earlier to match.
  const { tokens, stats } = await decoder.generate([2], { maxNewTokens: 1, seed: 5 });
  assert.equal(tokens.length, 1);
  assert.equal(stats.blocks, 1);
  assert.equal(stats.targetCalls, 1);
  assert.deepEqual(stats.plans.map((p) => [p.method, p.k, p.draftLength, p.blocks]), [["block", 1, 0, 1]]);
  assert.equal(proposer.matched, 0);
});

Deno.test("the decoder's context limit: lookup drafts stop at the target's maxLength", async () => {
  const { table, vocab } = maskedChain(7);
  const target = new MarkovModel({ table, vocabSize: vocab, maxLength: 20 });
  const decoder = new BlockDecoder({
    target,
    proposer: new LookupProposer({ vocabSize: vocab }),
    kernel: referenceKernel,
    verifier: "sd",
    draftLength: 8,
    warp: { temperature: 0 },
  });
  const { tokens, stats } = await decoder.generate([0, 1, 0, 1], { maxNewTokens: 100, seed: 3 });
  assert.equal(stats.stopReason, "length");
  assert.ok(4 + tokens.length <= 21, `${4 + tokens.length} tokens`);
  assert.ok(target.length <= 20);
});
