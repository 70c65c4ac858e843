/**
 * Tree attention vs row scoring on the real target (SmolLM2-135M-Instruct, fp32 unless `--dtype`,
 * onnxruntime-node):
 * per-call latency after a 64-token past, in the same process, cells interleaved round by round
 * (each round rotated by one cell), median over rounds of the mean of `--calls` calls, each
 * relative to t(1, 1) of the same model.
 *
 * Cells (the tree of n = 1 + rows × 4 nodes is the rows' drafts merged with nothing shared: one
 * pending token, then `rows` drafts of 4 tokens):
 * - `1x1` plain append of 1 token (2D mask on an "any" graph); `tree 1` the same as a one-node
 *   tree (the 4D mask) — plain appends of a 4D-mask graph vs the standard graph, together with
 *   `2d 1x1` (the standard graph given by `--standard`);
 * - `2x5` fork to 2 rows, append 5 tokens each (keep 5), vs `tree 9`: appendTree of 9 nodes;
 * - `4x5` vs `tree 17`.
 * Each is timed as its forward, and with its rollback: `select` to the past + 3 accepted tokens
 * (rows) or `keepTreePath` of a 3-node path (tree, the KV gather).
 *
 * Run: `deno run --allow-read --allow-env --allow-ffi --allow-sys tools/measure_tree.ts
 * [--folder models/smollm2-135m-instruct] [--standard <folder with a 2D-mask fp32 graph>]
 * [--rounds 7] [--calls 3] [--threads 2] [--dtype fp32]`. The folder's graph must take a 4D mask
 * (`deno task model:smollm2` builds it so). Prints, asserts nothing.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { OnnxCausalLM } from "../src/model/causal_lm.ts";
import { SMOLLM2_FOLDER } from "./model_smollm2.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    folder: { type: "string", default: SMOLLM2_FOLDER },
    standard: { type: "string" },
    rounds: { type: "string", default: "7" },
    calls: { type: "string", default: "3" },
    threads: { type: "string", default: "2" },
    dtype: { type: "string", default: "fp32" },
  },
});
const ROUNDS = Number(values.rounds), CALLS = Number(values.calls), THREADS = Number(values.threads);
const PAST = 64;
const DTYPE = values.dtype as "fp32" | "q8" | "q4";

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const load = () => Deno.loadavg().map((x) => x.toFixed(2)).join(", ");
const ids = (n: number, salt: number) =>
  Array.from({ length: n }, (_, t) => 3 + ((salt * 104729 + t * 7919) % 40000));

const model = await OnnxCausalLM.load(values.folder, { backend: "cpu", dtype: DTYPE, numThreads: THREADS });
if (!model.supportsTree) {
  console.error(
    `measure_tree: ${values.folder} (${model.file}) takes no 4D attention_mask; rebuild it (deno task model:smollm2) or pass --folder`,
  );
  Deno.exit(1);
}
const standard = values.standard
  ? await OnnxCausalLM.load(values.standard, { backend: "cpu", dtype: DTYPE, numThreads: THREADS })
  : undefined;
if (standard?.supportsTree) console.warn(`measure_tree: --standard ${values.standard} is tree-capable too`);

const prefix = ids(PAST, 0);
await model.append([prefix], 1);
await standard?.append([prefix], 1);

/** One timed call: [forward ms, forward + rollback ms]; the model is back at PAST afterwards. */
type Cell = (salt: number) => Promise<[number, number]>;
const plain = (m: OnnxCausalLM): Cell => async (salt) => {
  const t0 = performance.now();
  await m.append([ids(1, salt)], 1);
  const t1 = performance.now();
  m.select(0, PAST);
  return [t1 - t0, t1 - t0];
};
const rows = (r: number): Cell => async (salt) => {
  const t0 = performance.now();
  model.fork(r);
  await model.append(Array.from({ length: r }, (_, i) => ids(5, salt * 8 + i)), 5);
  const t1 = performance.now();
  model.select(r - 1, PAST + 3);
  const t2 = performance.now();
  model.select(0, PAST);
  return [t1 - t0, t2 - t0];
};
const tree = (r: number): Cell => async (salt) => {
  // one pending token (node 0), then r drafts of 4 tokens under it
  const tokens = [ids(1, salt)[0]], parents = [-1];
  for (let i = 0; i < r; i++) {
    ids(4, salt * 8 + i).forEach((token, j) => {
      parents.push(j === 0 ? 0 : tokens.length - 1);
      tokens.push(token);
    });
  }
  const last = tokens.length - 4; // the last draft's first node
  const t0 = performance.now();
  await model.appendTree(tokens, parents);
  const t1 = performance.now();
  model.keepTreePath(r === 0 ? [0] : [0, last, last + 1]);
  const t2 = performance.now();
  model.select(0, PAST);
  return [t1 - t0, t2 - t0];
};

const cells: [string, Cell][] = [
  ...(standard ? [["2d 1x1", plain(standard)] as [string, Cell]] : []),
  ["1x1", plain(model)],
  ["tree 1", tree(0)],
  ["2x5", rows(2)],
  ["tree 9", tree(2)],
  ["4x5", rows(4)],
  ["tree 17", tree(4)],
];

console.log(
  `measure_tree: ${values.folder} ${DTYPE} cpu, ${THREADS} threads, past ${PAST}, ${ROUNDS} rounds × ${CALLS} calls; load average ${load()}`,
);
for (const [, cell] of cells) await cell(0); // warm-up
const samples = new Map<string, [number[], number[]]>(cells.map(([name]) => [name, [[], []]]));
let salt = 1;
for (let round = 0; round < ROUNDS; round++) {
  // each round starts one cell later, so no cell always follows the same one
  const order = cells.map((_, i) => cells[(i + round) % cells.length]);
  for (const [name, cell] of order) {
    let forward = 0, total = 0;
    for (let c = 0; c < CALLS; c++) {
      const [f, t] = await cell(salt++);
      forward += f;
      total += t;
    }
    samples.get(name)![0].push(forward / CALLS);
    samples.get(name)![1].push(total / CALLS);
  }
}
const base = median(samples.get("1x1")![0]);
console.log("| cell | forward ms (÷ 1x1) | with rollback / gather ms (÷ 1x1) |");
console.log("|---|---|---|");
for (const [name] of cells) {
  const [f, t] = samples.get(name)!.map(median);
  console.log(
    `| ${name} | ${f.toFixed(1)} (${(f / base).toFixed(2)}) | ${t.toFixed(1)} (${(t / base).toFixed(2)}) |`,
  );
}
console.log(`load average at the end: ${load()}`);
await model.dispose();
await standard?.dispose();
