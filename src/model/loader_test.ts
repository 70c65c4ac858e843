import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import { ModelNotFoundError } from "./errors.ts";
import { openModelFolder } from "./loader.ts";
import { granted } from "./_testing.ts";

// testdata/folder: config.json = {"model_type":"llama"}, onnx/model.onnx = bytes 1 2 3
const FIXTURE = new URL("./testdata/folder", import.meta.url).pathname;
async function withTempFolder(fn: (dir: string) => Promise<void>): Promise<void> {
  await fn(FIXTURE);
}
const net = granted("net", "the http: folder test (a local Deno.serve)");

Deno.test("A local path, a file: URL string and a URL object read the same files", async () => {
  await withTempFolder(async (dir) => {
    for (const source of [dir, `${dir}/`, pathToFileURL(dir).href, pathToFileURL(dir)]) {
      const folder = await openModelFolder(source);
      assert.equal(await folder.has("config.json"), true);
      assert.equal(await folder.has("onnx"), false, "a directory is not a file");
      assert.equal(await folder.has("tokenizer.json"), false);
      assert.deepEqual(await folder.readJson("config.json"), { model_type: "llama" });
      assert.deepEqual([...await folder.readBytes("onnx/model.onnx")], [1, 2, 3]);
      await assert.rejects(() => folder.readBytes("onnx/missing.onnx"), (e: ModelNotFoundError) => {
        assert.ok(e instanceof ModelNotFoundError);
        assert.match(e.message, /onnx\/missing\.onnx: the file does not exist/);
        assert.ok(e.path.endsWith("onnx/missing.onnx"));
        return true;
      });
    }
  });
});

Deno.test({
  name: "An http: folder is read with fetch and a 404 is a ModelNotFoundError naming the URL",
  ignore: !net,
}, async () => {
  await withTempFolder(async (dir) => {
    const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (request) => {
      const path = new URL(request.url).pathname.replace(/^\/model\//, "");
      try {
        const body = await Deno.readFile(`${dir}/${path}`);
        return new Response(request.method === "HEAD" ? null : body);
      } catch {
        return new Response("no", { status: 404 });
      }
    });
    try {
      const folder = await openModelFolder(`http://127.0.0.1:${server.addr.port}/model/`);
      assert.equal(await folder.has("config.json"), true);
      assert.equal(await folder.has("generation_config.json"), false);
      assert.deepEqual(await folder.readJson("config.json"), { model_type: "llama" });
      await assert.rejects(
        () => folder.readBytes("onnx/model_fp16.onnx"),
        /404.*\/model\/onnx\/model_fp16\.onnx/,
      );
    } finally {
      await server.shutdown();
    }
  });
});

Deno.test("An in-memory folder takes bytes or text and lists what it holds when a file is missing", async () => {
  const folder = await openModelFolder({ "config.json": "{}", "onnx/model.onnx": new Uint8Array([9]) });
  assert.equal(folder.location, "<memory>");
  assert.deepEqual(await folder.readJson("config.json"), {});
  await assert.rejects(
    () => folder.readBytes("x.json"),
    /no such file \(it holds config\.json, onnx\/model\.onnx\)/,
  );
  // deno-lint-ignore no-explicit-any
  await assert.rejects(() => openModelFolder({ "a.json": 3 as any }), TypeError);
});

Deno.test("Unsupported schemes, names escaping the folder and invalid JSON are rejected with the cause", async () => {
  await assert.rejects(() => openModelFolder("ftp://example.com/m"), /only file:, http: and https:.*ftp:/);
  const folder = await openModelFolder({ "config.json": "{ nope" });
  await assert.rejects(() => folder.readBytes("../secret"), TypeError);
  await assert.rejects(() => folder.readJson("config.json"), /config\.json is not valid JSON/);
});
