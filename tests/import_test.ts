/**
 * The module as users import it: `mod.ts` by file URL from a script in another folder, in a fresh
 * process with no deno.json (`--no-config`: no import map, no lockfile of ours), generates the same
 * tokens as the source imported here; and the npm versions written into `src/` (full `npm:`
 * specifiers, which is what makes that work) agree with deno.json's pins.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SpeculativeGenerator } from "../mod.ts";

const ROOT = new URL("../", import.meta.url);
const canRun = (await Deno.permissions.query({ name: "run" })).state === "granted" &&
  (await Deno.permissions.query({ name: "write", path: "/tmp" })).state === "granted";

const SCRIPT = `
const root = Deno.args[0];
const { SpeculativeGenerator, createHandler } = await import(new URL("mod.ts", root).href);
const gen = await SpeculativeGenerator.fromPretrained({
  target: new URL("models/target/", root),
  draft: new URL("models/draft/", root),
  backend: "wasm",
});
const out = await gen.generate("Once upon a time", { maxNewTokens: 12, seed: 4, method: "spectr", k: 2 });
await gen.dispose();
console.log(JSON.stringify({ tokens: out.tokens, createHandler: typeof createHandler }));
`;

Deno.test({
  name:
    "mod.ts imports by file URL from a script in another folder, with no deno.json, and generates the same tokens",
  ignore: !canRun,
  async fn() {
    const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "spectr-import-" });
    try {
      await Deno.writeTextFile(`${dir}/main.ts`, SCRIPT);
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-config", "--allow-read", "--allow-env", "main.ts", ROOT.href],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, `the script failed:\n${stderr}`);
      assert.doesNotMatch(stderr, /error|not a dependency/i);
      const result = JSON.parse(stdout.trim().split("\n").at(-1)!);
      assert.equal(result.createHandler, "function", "createHandler is exported from mod.ts");

      const gen = await SpeculativeGenerator.fromPretrained({
        target: new URL("models/target/", ROOT),
        draft: new URL("models/draft/", ROOT),
        backend: "wasm",
      });
      const here = await gen.generate("Once upon a time", {
        maxNewTokens: 12,
        seed: 4,
        method: "spectr",
        k: 2,
      });
      await gen.dispose();
      assert.deepEqual(result.tokens, here.tokens);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("every npm: specifier under src/ pins the version deno.json's import map pins", async () => {
  const imports: Record<string, string> =
    JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).imports;
  const pinned = new Map<string, string>();
  for (const spec of Object.values(imports)) {
    const m = /^npm:(@?[^@]+)@([^/]+)/.exec(spec);
    if (m) pinned.set(m[1], m[2]);
  }
  const found: string[] = [];
  const walk = async (dir: URL) => {
    for await (const entry of Deno.readDir(dir)) {
      const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
      if (entry.isDirectory) await walk(url);
      else if (entry.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(url);
        for (const m of text.matchAll(/["']npm:(@?[^@"']+)@([^/"']+)[^"']*["']/g)) {
          found.push(`${m[1]}@${m[2]}`);
          assert.equal(m[2], pinned.get(m[1]), `${url.pathname}: npm:${m[1]}@${m[2]} vs deno.json`);
        }
        assert.doesNotMatch(
          text.replace(/^\s*(\*|\/\/).*$/gm, ""),
          /from ["'](onnxruntime-|@huggingface\/)|import\(["'](onnxruntime-|@huggingface\/)/,
          `${url.pathname} uses a bare import-map name`,
        );
      }
    }
  };
  await walk(new URL("src/", ROOT));
  assert.ok(found.some((s) => s.startsWith("onnxruntime-web@")), "the check found the specifiers");
});
