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

// readInto: a file of more than one 8 MiB piece (so the piecewise read and its offsets are exercised),
// read from disk, over http (Content-Length known, then a chunked body without it) and from memory,
// lands byte for byte in the destination the caller gives, which is asked for once with the size.
// Power check: a destination of the wrong size is a RangeError naming both sizes; a missing file is a
// ModelNotFoundError as for readBytes.
Deno.test({
  name: "readInto fills the caller's destination byte for byte: disk, http (with and without length), memory",
  ignore: !net,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "spectr_loader_into_" });
  const n = (8 << 20) * 2 + 12345;
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = (i * 2654435761) >>> 27;
  await Deno.writeFile(`${dir}/big.bin`, data);
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (request) => {
    const path = new URL(request.url).pathname;
    const body = await Deno.readFile(`${dir}/big.bin`);
    if (path.endsWith("chunked.bin")) {
      // a stream without Content-Length
      return new Response(
        new ReadableStream({
          start(c) {
            for (let at = 0; at < body.length; at += 1 << 20) c.enqueue(body.slice(at, at + (1 << 20)));
            c.close();
          },
        }),
      );
    }
    return path.endsWith("big.bin") ? new Response(body) : new Response("no", { status: 404 });
  });
  try {
    const folders = [
      ["disk", await openModelFolder(dir), "big.bin"],
      ["http", await openModelFolder(`http://127.0.0.1:${server.addr.port}/`), "big.bin"],
      ["http, no length", await openModelFolder(`http://127.0.0.1:${server.addr.port}/`), "chunked.bin"],
      ["memory", await openModelFolder({ "big.bin": data }), "big.bin"],
    ] as const;
    for (const [label, folder, name] of folders) {
      const asked: number[] = [];
      const target = new Uint8Array(n + 64);
      const got = await folder.readInto!(name, (size) => {
        asked.push(size);
        return target.subarray(32, 32 + size);
      });
      assert.deepEqual(asked, [n], `${label}: asked once, with the file's size`);
      assert.equal(got.buffer, target.buffer, `${label}: the caller's memory`);
      assert.equal(got.byteOffset, 32);
      assert.ok(got.every((x, i) => x === data[i]), `${label}: the bytes`);
      await assert.rejects(
        () => folder.readInto!(name, (size) => new Uint8Array(size - 1)),
        (e: Error) => e instanceof RangeError && new RegExp(`${n} bytes, got ${n - 1} bytes`).test(e.message),
        `${label}: a destination of the wrong size`,
      );
    }
    await assert.rejects(
      () => folders[0][1].readInto!("missing.bin", (size) => new Uint8Array(size)),
      ModelNotFoundError,
    );
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
