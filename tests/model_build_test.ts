/**
 * `deno task model:smollm2` (tools/model_smollm2.ts) as a user meets it: a complete folder is
 * verified and left alone, a tampered file is caught, a build without pip says so, and a failed
 * build leaves no folder that looks complete. The real build (download, conversion) is what CI
 * runs before the tests (.ci/run); these tests use the cached wheel, or skip without it.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  buildSmollm2,
  checkBuilt,
  PipMissingError,
  SMOLLM2,
  SMOLLM2_CACHE,
  SMOLLM2_FOLDER,
} from "../tools/model_smollm2.ts";

const built = (await checkBuilt(SMOLLM2_FOLDER)) === undefined;
const canWrite = (await Deno.permissions.query({ name: "write", path: "/tmp" })).state === "granted";

Deno.test({
  name: "the built folder verifies against build.json, and a tampered copy does not",
  ignore: !built || !canWrite,
  async fn() {
    const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "spectr-build-" });
    try {
      // A copy of the small files with their lines of build.json (the ONNX lines dropped).
      const manifest = JSON.parse(await Deno.readTextFile(`${SMOLLM2_FOLDER}/build.json`));
      const small = Object.fromEntries(
        Object.entries(manifest.files as Record<string, unknown>).filter(([name]) =>
          !name.startsWith("onnx/")
        ),
      );
      assert.ok(Object.keys(small).includes("tokenizer.json"));
      for (const name of Object.keys(small)) {
        await Deno.copyFile(`${SMOLLM2_FOLDER}/${name}`, `${dir}/${name}`);
      }
      await Deno.writeTextFile(`${dir}/build.json`, JSON.stringify({ ...manifest, files: small }));
      assert.equal(await checkBuilt(dir), undefined);
      const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
      config.num_hidden_layers = 29; // same length: only the SHA-256 can catch it
      await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config, null, 2) + "\n");
      const problem = await checkBuilt(dir);
      assert.match(problem ?? "", /config\.json (does not match its SHA-256|has \d+ bytes)/);
      await Deno.remove(`${dir}/tokenizer.json`);
      assert.match((await checkBuilt(dir)) ?? "", /missing|config\.json/);
      assert.equal(await checkBuilt(`${dir}/nothing`), "no build.json");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a build that must download the wheel without pip fails with PipMissingError and leaves no folder",
  ignore: !canWrite,
  async fn() {
    const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "spectr-nopip-" });
    const path = Deno.env.get("PATH");
    try {
      Deno.env.set("PATH", "/nonexistent");
      const error = await buildSmollm2({ folder: `${dir}/model`, cache: `${dir}/cache` }).catch((e) => e);
      assert.ok(error instanceof PipMissingError, String(error));
      assert.match(error.message, /pip is needed/);
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n === "model"), []);
    } finally {
      if (path !== undefined) Deno.env.set("PATH", path);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const wheel = `${SMOLLM2_CACHE}/${SMOLLM2.wheel}`;
const haveWheel = await Deno.stat(wheel).then(() => true, () => false);

Deno.test({
  name: "a build from the cached wheel writes a complete, verified folder; a rerun does nothing",
  ignore: !haveWheel || !canWrite,
  async fn() {
    const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "spectr-rebuild-" });
    try {
      await Deno.mkdir(`${dir}/cache`);
      await Deno.copyFile(wheel, `${dir}/cache/${SMOLLM2.wheel}`); // no pip needed: the wheel is cached
      const started = performance.now();
      const first = await buildSmollm2({ folder: `${dir}/model`, cache: `${dir}/cache` });
      console.log(`built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      assert.equal(first.built, true);
      assert.equal(await checkBuilt(`${dir}/model`), undefined);
      assert.ok((await Deno.stat(`${dir}/model/onnx/model.onnx`)).size > 500e6);
      const second = await buildSmollm2({ folder: `${dir}/model`, cache: `${dir}/cache` });
      assert.equal(second.built, false);
      // Nothing but the folder and the cache: the temporary build folder is gone.
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["cache", "model"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
