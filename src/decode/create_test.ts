import { getVerifier } from "../verify/mod.ts";
import { AutoPlanner } from "./auto.ts";
import { calibrateBlockCost } from "./cost.ts";
import assert from "node:assert/strict";
import { referenceKernel } from "../kernel/reference.ts";
import { AutoregressiveDecoder } from "./autoregressive.ts";
import { createDecoder, decodeMethods } from "./create.ts";
import { BlockDecoder } from "./decoder.ts";
import { MarkovModel, randomMarkovTable } from "./markov.ts";
import type { DecodeMethod } from "./types.ts";

const table = randomMarkovTable(3, 1, 61);
const target = new MarkovModel({ table, vocabSize: 3 });
const draft = new MarkovModel({ table, vocabSize: 3 });

Deno.test("createDecoder builds every method by name", async () => {
  for (const method of decodeMethods) {
    const dec = createDecoder(method, {
      target,
      draft,
      planner: method === "auto"
        ? new AutoPlanner({ cost: await calibrateBlockCost(target, draft, { budgetMs: 50 }) })
        : undefined,
      kernel: referenceKernel,
      k: method === "autoregressive" || method === "auto"
        ? 2
        : Math.min(2, getVerifier(method).maxCandidates),
      draftLength: 2,
    });
    assert.equal(dec.method, method);
    assert.ok(
      method === "autoregressive" ? dec instanceof AutoregressiveDecoder : dec instanceof BlockDecoder,
    );
    const { tokens } = await dec.generate([0], { maxNewTokens: 5, seed: 1 });
    assert.equal(tokens.length, 5);
  }
});

Deno.test("createDecoder needs a draft model for speculative methods only", () => {
  assert.equal(createDecoder("autoregressive", { target, kernel: referenceKernel }).method, "autoregressive");
  assert.throws(() => createDecoder("kseq", { target, kernel: referenceKernel }), {
    name: "RangeError",
    message: /needs a draft model/,
  });
});

Deno.test("createDecoder rejects unknown methods and sd with k > 1", () => {
  assert.throws(() => createDecoder("beam" as DecodeMethod, { target, draft, kernel: referenceKernel }), {
    name: "RangeError",
    message: /unknown method "beam"/,
  });
  assert.throws(() => createDecoder("sd", { target, draft, kernel: referenceKernel, k: 3 }), RangeError);
});
