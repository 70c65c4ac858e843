/**
 * `deno task model:smollm2` rebuilds a folder whose build.json records graphs with another
 * attention_mask form than the one it writes (builds from before tree attention record none: 2D).
 *
 * @module
 */

import assert from "node:assert/strict";
import { checkBuilt, SMOLLM2 } from "../tools/model_smollm2.ts";

const canWrite = (await Deno.permissions.query({ name: "write", path: "/tmp" })).state === "granted";

Deno.test({
  name: "a build.json without the tree-capable attention_mask form marks the folder for a rebuild",
  ignore: !canWrite,
  async fn() {
    assert.equal(SMOLLM2.attentionMask, "any");
    const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "spectr-build-mask-" });
    try {
      const source = { pypi: SMOLLM2.pypi };
      await Deno.writeTextFile(`${dir}/build.json`, JSON.stringify({ source, files: {} }));
      assert.equal(
        await checkBuilt(dir),
        "build.json records graphs with a 2d attention_mask, this build writes any",
      );
      await Deno.writeTextFile(
        `${dir}/build.json`,
        JSON.stringify({ source, attentionMask: "4d", files: {} }),
      );
      assert.match((await checkBuilt(dir)) ?? "", /a 4d attention_mask/);
      await Deno.writeTextFile(
        `${dir}/build.json`,
        JSON.stringify({ source, attentionMask: "any", files: {} }),
      );
      // a build before the feature drafter records no hidden-state outputs: rebuilt too
      assert.match((await checkBuilt(dir)) ?? "", /hidden-state outputs \[\]/);
      await Deno.writeTextFile(
        `${dir}/build.json`,
        JSON.stringify({ source, attentionMask: "any", hiddenStates: SMOLLM2.hiddenStates, files: {} }),
      );
      assert.equal(await checkBuilt(dir), undefined);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
