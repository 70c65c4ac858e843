import assert from "node:assert/strict";
import { StatsRecorder } from "./stats.ts";

Deno.test("the recorder counts reached and accepted depths per block", () => {
  const rec = new StatsRecorder(3);
  rec.recordBlock(3, 3);
  rec.recordBlock(2, 1);
  rec.recordBlock(1, 0);
  rec.targetCalls = 3;
  rec.draftCalls = 9;
  const stats = rec.finish(7, "maxNewTokens");
  assert.equal(stats.blocks, 3);
  assert.deepEqual(stats.reachedPerDepth, [3, 2, 1]);
  assert.deepEqual(stats.acceptedPerDepth, [2, 1, 1]);
  assert.deepEqual(stats.acceptancePerDepth, [2 / 3, 0.5, 1]);
  assert.equal(stats.blockEfficiency, 7 / 3);
  assert.equal(stats.draftCalls, 9);
  assert.equal(stats.stopReason, "maxNewTokens");
});

Deno.test("acceptance is NaN at depths never reached and efficiency 0 without target calls", () => {
  const stats = new StatsRecorder(2).finish(0, "length");
  assert.ok(Number.isNaN(stats.acceptancePerDepth[0]));
  assert.equal(stats.blockEfficiency, 0);
  assert.equal(stats.blocks, 0);
});

Deno.test("stage times accumulate and the total covers them", () => {
  const rec = new StatsRecorder(0);
  const start = performance.now() - 5;
  const now = rec.time("verifyMs", start);
  assert.ok(rec.verifyMs >= 5);
  rec.time("verifyMs", now);
  assert.ok(rec.finish(0, "eos").totalMs >= 0);
});
