// EagleProposer's reduced vocabulary: the drafter's logits cover only the draft slots (d2t), the
// proposer warps and samples there and hands the verifier [vocab] q rows scattered from them.
// Checked against the full-vocabulary rule (logits −Infinity outside d2t, then the target's warp)
// on both kernels, and the q rows are the very rows sampled from.

import assert from "node:assert/strict";
import { type EagleDrafterModel, EagleProposer } from "./eagle_proposer.ts";
import { referenceKernel } from "../kernel/reference.ts";
import { loadKernel } from "../kernel/wasm.ts";
import type { Kernel, WarpOptions } from "../kernel/types.ts";
import { Random } from "../random.ts";

const V = 64;
/** Draft slots: 24 ascending ids with gaps (slot s is token D2T[s]). */
const D2T = Int32Array.from({ length: 24 }, (_, s) => 2 + 2 * s + (s > 12 ? 9 : 0));

/** Slot logits with ties at the top and in the middle (so top-k / top-p / greedy boundaries tie). */
function slotLogits(seed: number): Float32Array {
  const r = new Random(seed);
  const x = Float32Array.from(D2T, () => Math.round(8 * (r.next() * 4 - 2)) / 8);
  x[5] = x[17] = Math.max(...x) + 0.5; // a tie at the top
  return x;
}

/** The full-vocabulary row of the old contract: −Infinity outside d2t. */
function fullRow(slots: Float32Array): Float32Array {
  const full = new Float32Array(V).fill(-Infinity);
  D2T.forEach((id, s) => (full[id] = slots[s]));
  return full;
}

const WARPS: WarpOptions[] = [
  {},
  { temperature: 0.7 },
  { temperature: 0 },
  { topK: 1 },
  { topK: 5 },
  { topK: 24 },
  { topK: 40 }, // more than the slots: every −Infinity entry kept, at probability 0
  { topP: 0.5 },
  { topP: 0.9, temperature: 1.3 },
  { topK: 7, topP: 0.8, temperature: 0.6 },
];

const kernels: Kernel[] = [referenceKernel, await loadKernel()];

for (const kernel of kernels) {
  Deno.test(`The ${kernel.name} kernel's warp of the draft slots, scattered, equals its warp of the row that is −Infinity outside d2t`, () => {
    for (const warp of WARPS) {
      for (let seed = 1; seed <= 6; seed++) {
        const slots = slotLogits(seed);
        const full = kernel.warp(fullRow(slots), warp);
        const reduced = kernel.warp(slots, warp);
        for (let id = 0; id < V; id++) {
          const s = D2T.indexOf(id);
          const want = s < 0 ? 0 : reduced[s];
          assert.ok(
            Math.abs(full[id] - want) <= 1e-6 && (full[id] === 0) === (want === 0),
            `${JSON.stringify(warp)} seed ${seed} id ${id}: full ${full[id]}, slots ${want}`,
          );
        }
      }
    }
  });
}

/** A stand-in drafter whose slot logits depend on the row's last token (hidden size 1). */
function standInDrafter(d2t: Int32Array | undefined): EagleDrafterModel & { lastLogits: Float32Array[] } {
  let rows = 1, length = 0;
  const lastLogits: Float32Array[] = [];
  return {
    vocabSize: V,
    draftToTarget: d2t,
    hiddenSize: 1,
    featureSize: 2,
    maxLength: 256,
    lastLogits,
    get rows() {
      return rows;
    },
    get length() {
      return length;
    },
    reset() {
      rows = 1;
      length = 0;
    },
    fuse: (_f, n) => Promise.resolve(new Float32Array(n)),
    append(tokens) {
      length += tokens[0].length;
      const width = d2t ? d2t.length : V;
      const logits = new Float32Array(tokens.length * width);
      tokens.forEach((row, r) => {
        const slots = slotLogits(100 + row[row.length - 1]);
        logits.set(d2t ? slots : fullRow(slots), r * width);
      });
      lastLogits.push(logits);
      return Promise.resolve({ logits, hidden: new Float32Array(tokens.length) });
    },
    fork(k) {
      rows = k;
    },
    select(_r, n) {
      rows = 1;
      length = n;
    },
  };
}

for (const kernel of kernels) {
  Deno.test(`EagleProposer (${kernel.name} kernel) samples in the draft slots and hands the verifier the [vocab] q it sampled from: zeros outside d2t`, async () => {
    for (const warp of [{}, { temperature: 0.8, topK: 6 }, { topP: 0.7 }, { temperature: 0 }]) {
      for (const sampling of ["iid", "without-replacement"] as const) {
        const drafter = standInDrafter(D2T);
        const proposer = new EagleProposer({ drafter, kernel, warp });
        proposer.reset();
        const random = new Random(9);
        const proposal = await proposer.propose(
          [3, 4],
          { k: 3, draftLength: 3, sampling },
          random,
          new Float32Array(4),
        );
        // replay the uniforms: each token is the full-vocabulary inverse-CDF draw from its q row
        const replay = new Random(9);
        const first = replay.fill(new Float64Array(proposal.k));
        const q0 = proposal.probs[0][0];
        assert.deepEqual(
          [...kernel.sample(q0, first, sampling === "without-replacement")],
          proposal.tokens.map((t) => t[0]),
          `${JSON.stringify(warp)} ${sampling}: depth 0`,
        );
        for (let t = 1; t < 3; t++) {
          for (let r = 0; r < proposal.k; r++) {
            const q = proposal.probs[r][t];
            assert.equal(kernel.sample(q, [replay.next()])[0], proposal.tokens[r][t], `depth ${t} row ${r}`);
          }
        }
        for (let r = 0; r < proposal.k; r++) {
          for (const q of proposal.probs[r]) {
            assert.equal(q.length, V);
            let sum = 0;
            for (let id = 0; id < V; id++) {
              if (!D2T.includes(id)) assert.equal(q[id], 0, `q = 0 outside d2t (id ${id})`);
              sum += q[id];
            }
            assert.ok(Math.abs(sum - 1) < 1e-5, `q sums to ${sum}`);
          }
          for (const token of proposal.tokens[r]) assert.ok(D2T.includes(token), `token ${token} in d2t`);
        }
      }
    }
  });
}

Deno.test("EagleProposer with a slot map equals EagleProposer over full-vocabulary logits −Infinity outside d2t: same tokens, same q", async () => {
  for (const kernel of kernels) {
    for (const warp of [{}, { temperature: 0.5, topK: 4 }, { topP: 0.6 }]) {
      const run = async (d2t: Int32Array | undefined) => {
        const proposer = new EagleProposer({ drafter: standInDrafter(d2t), kernel, warp });
        proposer.reset();
        return await proposer.propose([7], { k: 2, draftLength: 4 }, new Random(4), new Float32Array(2));
      };
      const [reduced, full] = [await run(D2T), await run(undefined)];
      assert.deepEqual(reduced.tokens, full.tokens, `${kernel.name} ${JSON.stringify(warp)}`);
      reduced.probs.forEach((row, r) =>
        row.forEach((q, t) => {
          for (let id = 0; id < V; id++) {
            assert.ok(
              Math.abs(q[id] - full.probs[r][t][id]) <= 1e-6,
              `${kernel.name} row ${r} depth ${t} id ${id}`,
            );
          }
        })
      );
    }
  }
});

Deno.test("EagleProposer rejects a drafter whose logits are not one row over its draft slots", async () => {
  const drafter = standInDrafter(D2T);
  const proposer = new EagleProposer({
    drafter: { ...drafter, draftToTarget: D2T.subarray(1) },
    kernel: referenceKernel,
  });
  await assert.rejects(
    () => proposer.propose([1], { k: 1, draftLength: 1 }, new Random(1), new Float32Array(2)),
    /returned 24 logits, expected 23/,
  );
});
