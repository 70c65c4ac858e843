/**
 * Serves the browser example (examples/browser/) on loopback: the page, the edge bundle built by
 * tools/bundle.ts (`spectr.js`, `spectr_kernel.wasm`, onnxruntime-web's `ort-wasm-simd-threaded.{wasm,mjs}`),
 * onnxruntime-web's own `dist/` folder (only its WebGPU build is used, through the page's import map)
 * and the model folders.
 *
 * | URL            | what                                                                    |
 * | -------------- | ----------------------------------------------------------------------- |
 * | `/`            | `index.html` (and the other files beside this one: `app.js`, `style.css`, `node_module.js`) |
 * | `/dist/<file>` | the bundle folder                                                       |
 * | `/ort/<file>`  | onnxruntime-web's `dist/` (from Deno's npm cache)                       |
 * | `/models/<…>`  | the models folder (`target/`, `draft/`, `smollm2-135m-instruct/`, `smollm2-draft/`) |
 *
 * Usage: `deno task example:browser [--port N] [--bundle DIR]`. Without `--bundle` it builds the
 * bundle into `dist/` first (`deno task bundle`); with it, it serves that folder as it is. It listens on
 * 127.0.0.1 only.
 *
 * @module
 */

import { buildBundle, ortDistDir } from "../../tools/bundle.ts";

/** Where {@linkcode createExampleHandler} finds what it serves (absolute paths). */
export interface ExampleFiles {
  /** The bundle folder (`spectr.js` and the `.wasm`/`.mjs` files beside it). */
  bundleDir: string;
  /** onnxruntime-web's `dist/` folder (for its WebGPU build). */
  ortDir: string;
  /** The models folder. */
  modelsDir: string;
  /** The page's folder. @default {this file's folder} */
  pageDir?: string;
}

/** The page's folder (this file's). */
export const PAGE_DIR: string = decodeURIComponent(new URL("./", import.meta.url).pathname);
/** The repository's models/ folder. */
export const MODELS_DIR: string = decodeURIComponent(new URL("../../models/", import.meta.url).pathname);

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  json: "application/json; charset=utf-8",
  wasm: "application/wasm",
  onnx: "application/octet-stream",
  onnx_data: "application/octet-stream",
  txt: "text/plain; charset=utf-8",
  md: "text/plain; charset=utf-8",
};
/** Page files served from `/`: the page itself, never this server's source. */
const PAGE_EXTENSIONS = new Set(["html", "js", "css"]);

function typeOf(name: string): string {
  return TYPES[name.slice(name.lastIndexOf(".") + 1)] ?? "application/octet-stream";
}

/** The path segments of `rest`, or undefined when one is empty, hidden (`.x`, `..`) or has a backslash. */
function segments(rest: string): string[] | undefined {
  let parts: string[];
  try {
    parts = rest.split("/").map(decodeURIComponent);
  } catch {
    return undefined;
  }
  return parts.every((p) => p !== "" && !p.startsWith(".") && !p.includes("\\")) ? parts : undefined;
}

async function file(path: string, head: boolean): Promise<Response> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return new Response("not found\n", { status: 404 });
    throw e;
  }
  if (!info.isFile) return new Response("not found\n", { status: 404 });
  const headers = {
    "content-type": typeOf(path),
    "content-length": String(info.size),
    "cache-control": "no-store",
  };
  if (head) return new Response(null, { headers });
  const f = await Deno.open(path);
  return new Response(f.readable, { headers });
}

/**
 * The request handler of the example's server: GET and HEAD of the files listed in the module
 * docs; anything else is 404 (unknown path) or 405 (other methods).
 *
 * @param files Where the bundle, onnxruntime-web and the models are.
 * @returns A `Deno.serve` handler.
 */
export function createExampleHandler(files: ExampleFiles): (request: Request) => Promise<Response> {
  const pageDir = (files.pageDir ?? PAGE_DIR).replace(/\/*$/, "/");
  const roots: Record<string, string> = {
    dist: files.bundleDir.replace(/\/*$/, "/"),
    ort: files.ortDir.replace(/\/*$/, "/"),
    models: files.modelsDir.replace(/\/*$/, "/"),
  };
  return async (request: Request): Promise<Response> => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    const head = request.method === "HEAD";
    const pathname = new URL(request.url).pathname;
    if (pathname === "/") return await file(`${pageDir}index.html`, head);
    const parts = segments(pathname.slice(1));
    if (!parts) return new Response("not found\n", { status: 404 });
    if (parts.length === 1) {
      const ext = parts[0].slice(parts[0].lastIndexOf(".") + 1);
      if (!PAGE_EXTENSIONS.has(ext)) return new Response("not found\n", { status: 404 });
      return await file(pageDir + parts[0], head);
    }
    const root = roots[parts[0]];
    // dist/ and ort/ are flat folders; models/ has model folders with onnx/ inside.
    if (root === undefined || (parts[0] !== "models" && parts.length !== 2)) {
      return new Response("not found\n", { status: 404 });
    }
    return await file(root + parts.slice(1).join("/"), head);
  };
}

/** A running example server. */
export interface ExampleServer {
  /** The page's URL (`http://127.0.0.1:<port>/`). */
  url: string;
  /** Stops the server. */
  shutdown(): Promise<void>;
}

/**
 * Serves the example on 127.0.0.1.
 *
 * @param files Where the bundle, onnxruntime-web and the models are.
 * @param port The port; 0 picks a free one.
 * @returns The server and the page's URL.
 */
export function serveExample(files: ExampleFiles, port = 0): ExampleServer {
  const handler = createExampleHandler(files);
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, handler);
  const addr = server.addr as Deno.NetAddr;
  return { url: `http://127.0.0.1:${addr.port}/`, shutdown: () => server.shutdown() };
}

if (import.meta.main) {
  const args = [...Deno.args];
  let port = 8080;
  let bundleDir: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--port" && args[i + 1] !== undefined) port = Number(args[++i]);
    else if (args[i] === "--bundle" && args[i + 1] !== undefined) bundleDir = args[++i];
    else {
      console.error(`usage: deno task example:browser [--port N] [--bundle DIR]; got ${args[i]}`);
      Deno.exit(2);
    }
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port must be an integer in [0, 65535], got ${port}`);
    Deno.exit(2);
  }
  try {
    if (bundleDir === undefined) bundleDir = (await buildBundle()).outdir;
    else if (!bundleDir.startsWith("/")) bundleDir = `${Deno.cwd()}/${bundleDir}`;
    await Deno.stat(`${bundleDir}/spectr.js`);
    const { url } = serveExample({ bundleDir, ortDir: await ortDistDir(), modelsDir: MODELS_DIR }, port);
    console.log(`spectr browser example: open ${url} (bundle ${bundleDir}; Ctrl-C stops)`);
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    Deno.exit(1);
  }
}
