import assert from "node:assert/strict";
import { referenceKernel } from "../kernel/reference.ts";
import { BlockDecoder } from "./decoder.ts";
import { DraftProposer } from "./proposer.ts";
import { MarkovModel, randomMarkovTable } from "./markov.ts";
import { TargetScorer } from "./scorer.ts";
import { toyFeatureHash, ToyFeatureProposer } from "./_testing.ts";

/**
 * Runs generations with a recording feature proposer and checks every call against the contract:
 * feature row i is the target's feature of the position just before pending[i], i.e. for the
 * committed sequence s (prompt, then every pending token in order), `[P, s[P], h(s[0..P])]` with
 * P = the index of the token before pending[i].
 */
async function checkAlignment(options: { verifier: string; k: number; draftLength: number; tree: boolean }) {
  const vocab = 5;
  const table = randomMarkovTable(vocab, 1, 3, { scale: 1.5 });
  const target = new MarkovModel({ table, vocabSize: vocab, features: true, tree: options.tree });
  let seq: number[] = [];
  let calls = 0, firstPending = 0;
  const blocks = { accepted: 0, rejected: 0 };
  const proposer = new ToyFeatureProposer({
    table: randomMarkovTable(vocab, 1, 4, { scale: 1.5 }), // a different table: some rejections
    vocabSize: vocab,
    kernel: referenceKernel,
    record: (pending, features) => {
      if (calls++ === 0) firstPending = pending.length;
      assert.equal(features.length, pending.length * 3);
      for (let i = 0; i < pending.length; i++) {
        const p = seq.length - 1;
        assert.deepEqual(
          [...features.subarray(i * 3, i * 3 + 3)],
          [p, seq[p], toyFeatureHash(seq)],
          `feature row ${i} of call ${calls} (pending ${pending})`,
        );
        seq.push(pending[i]);
      }
    },
  });
  const decoder = new BlockDecoder({ target, proposer, kernel: referenceKernel, ...options });
  for (let seed = 1; seed <= 20; seed++) {
    const prompt = [seed % vocab, (seed * 3) % vocab, 1];
    seq = [prompt[0]];
    calls = 0;
    const { tokens, stats } = await decoder.generate(prompt, { maxNewTokens: 24, seed });
    assert.equal(
      firstPending,
      prompt.length,
      "the first pending: the prompt after x0, plus the prefill's token",
    );
    assert.deepEqual(
      seq,
      [...prompt, ...tokens].slice(0, seq.length),
      "pending tokens are the committed ones",
    );
    assert.ok(seq.length >= prompt.length + tokens.length - options.draftLength - 1);
    assert.equal(stats.targetCalls, stats.blocks, "one target call per block, the prefill step included");
    assert.ok(stats.plans.some((p) => p.method === "autoregressive" && p.blocks === 1), "the prefill step");
    for (let t = 0; t < stats.acceptedPerDepth.length; t++) {
      blocks.accepted += stats.acceptedPerDepth[t];
      blocks.rejected += stats.reachedPerDepth[t] - stats.acceptedPerDepth[t];
    }
  }
  assert.ok(
    blocks.accepted > 10 && blocks.rejected > 10,
    `accepted and rejected drafts: ${JSON.stringify(blocks)}`,
  );
}

for (
  const c of [
    { verifier: "sd", k: 1, draftLength: 3, tree: true },
    { verifier: "block", k: 1, draftLength: 2, tree: false },
    { verifier: "kseq", k: 3, draftLength: 3, tree: true },
    { verifier: "kseq", k: 3, draftLength: 3, tree: false },
    { verifier: "specinfer-wor", k: 2, draftLength: 2, tree: true },
  ]
) {
  Deno.test(
    `a feature proposer gets the target's features of the positions before its pending tokens: ${c.verifier} k=${c.k} L=${c.draftLength} (${
      c.tree ? "tree" : "rows"
    })`,
    () => checkAlignment(c),
  );
}

Deno.test("the scorer keeps the features of the pending token and the accepted drafts, rows and tree", async () => {
  for (const tree of [true, false]) {
    const target = new MarkovModel({ table: randomMarkovTable(6, 1, 2), vocabSize: 6, features: true, tree });
    const scorer = new TargetScorer({ model: target, kernel: referenceKernel, features: true });
    await scorer.score([0, 1, 2], [new Int32Array(0)], 0);
    scorer.rollback(0, 0);
    assert.deepEqual([...scorer.keptFeatures()], [
      0,
      0,
      toyFeatureHash([0]),
      1,
      1,
      toyFeatureHash([0, 1]),
      2,
      2,
      toyFeatureHash([0, 1, 2]),
    ]);
    await scorer.score([3], [Int32Array.of(4, 5, 1), Int32Array.of(4, 2, 2), Int32Array.of(5, 5, 5)], 3);
    scorer.rollback(1, 2); // keep 3, then draft 1's 4 2
    const seq = [0, 1, 2, 3, 4, 2];
    const want = [3, 4, 5].flatMap((p) => [p, seq[p], toyFeatureHash(seq.slice(0, p + 1))]);
    assert.deepEqual([...scorer.keptFeatures()], want, tree ? "tree" : "rows");
  }
  const plain = new MarkovModel({ table: randomMarkovTable(3, 1, 2), vocabSize: 3 });
  assert.throws(
    () => new TargetScorer({ model: plain, kernel: referenceKernel, features: true }),
    /no target features/,
  );
});

Deno.test("a decoder refuses a feature proposer over a target without features; draft proposers ignore features", async () => {
  const table = randomMarkovTable(4, 1, 9);
  const plain = new MarkovModel({ table, vocabSize: 4 });
  const proposer = new ToyFeatureProposer({ table, vocabSize: 4, kernel: referenceKernel });
  assert.throws(
    () => new BlockDecoder({ target: plain, proposer, kernel: referenceKernel, verifier: "sd" }),
    /reads target features/,
  );
  // A target with features and a plain draft model: the same tokens as without features.
  const run = async (features: boolean) => {
    const target = new MarkovModel({ table, vocabSize: 4, features });
    const draft = new DraftProposer({
      model: new MarkovModel({ table, vocabSize: 4 }),
      kernel: referenceKernel,
    });
    const decoder = new BlockDecoder({
      target,
      proposer: draft,
      kernel: referenceKernel,
      verifier: "kseq",
      k: 2,
    });
    return (await decoder.generate([1], { maxNewTokens: 20, seed: 4 })).tokens;
  };
  assert.deepEqual(await run(true), await run(false));
});
