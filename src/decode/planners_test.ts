// The planner registry (planners.ts) is the one source of planning method names: createDecoder's
// decodeMethods, the generator's generationMethods and the HTTP handler's method check derive from it
// (checked here by membership, with the registry's keys as the expectation); `auto`'s kind builds an
// AutoPlanner bounded by the context and reading its cost model once. Power checks: a verifier name is
// not a planner name, and createDecoder refuses a planning method without a planner.
import assert from "node:assert/strict";
import { AutoPlanner } from "./auto.ts";
import { ForwardCost } from "./cost.ts";
import { createDecoder, decodeMethods } from "./create.ts";
import { isPlannerName, plannerNames, planners } from "./planners.ts";
import { generationMethods } from "../generate/generator.ts";
import { verifierNames } from "../verify/mod.ts";
import { referenceKernel } from "../kernel/reference.ts";
import { MarkovModel, randomMarkovTable } from "./markov.ts";

const markov = (seed: number) => new MarkovModel({ table: randomMarkovTable(8, 1, seed), vocabSize: 8 });

Deno.test("planners: the registry's names are planning methods of the decoder and the generator, and no verifier's", () => {
  assert.deepEqual(plannerNames, Object.keys(planners));
  assert.ok(plannerNames.includes("auto"));
  for (const name of plannerNames) {
    assert.equal(planners[name].name, name);
    assert.ok(isPlannerName(name));
    assert.ok(decodeMethods.includes(name), `decodeMethods has ${name}`);
    assert.ok(generationMethods.includes(name), `generationMethods has ${name}`);
  }
  for (const v of verifierNames) assert.equal(isPlannerName(v), false, `${v} is a verifier, not a planner`);
  assert.equal(isPlannerName("autoregressive"), false);
});

Deno.test("planners: auto's kind builds an AutoPlanner within the context's bounds, reading the cost once", async () => {
  let reads = 0;
  const flat = new ForwardCost({ rows: [1], tokens: [1], ms: [10] });
  const target = markov(1);
  const planner = await planners.auto.create({
    target,
    maxDrafts: 3,
    maxDraftLength: 2,
    cost: () => {
      reads++;
      return Promise.resolve({ target: flat, draft: new ForwardCost({ rows: [1], tokens: [1], ms: [1] }) });
    },
  });
  assert.ok(planner instanceof AutoPlanner);
  assert.equal(planner.name, "auto");
  assert.equal(reads, 1);
  planner.start();
  const plan = planner.plan();
  assert.ok(
    plan.k >= 1 && plan.k <= 3 && plan.draftLength >= 1 && plan.draftLength <= 2,
    JSON.stringify(plan),
  );
});

Deno.test("power check: createDecoder refuses a planning method without its planner", () => {
  const target = markov(1), draft = markov(2);
  for (const name of plannerNames) {
    assert.throws(
      () => createDecoder(name, { target, draft, kernel: referenceKernel }),
      (e: Error) => e instanceof RangeError && e.message.includes(`"${name}" needs a planner`),
    );
  }
});
