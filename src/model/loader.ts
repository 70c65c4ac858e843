/**
 * Model folders in the Hugging Face / Optimum layout (`config.json`, `onnx/model.onnx`, ...), read
 * from a local path, a `file:` / `http(s):` URL, or an in-memory map of files for edge runtimes
 * without a file system.
 *
 * @module
 */

import { InvalidModelError, ModelNotFoundError } from "./errors.ts";

/** An in-memory model folder: relative file name → bytes, or text (UTF-8). */
export type ModelFiles = Record<string, Uint8Array | string>;

/** Where a model folder lives: a local path, a URL, an in-memory map, or a ready loader. */
export type ModelSource = string | URL | ModelFiles | ModelLoader;

/** Read access to the files of one model folder, by name relative to the folder. */
export interface ModelLoader {
  /** The folder's path or URL, for messages (`"<memory>"` for an in-memory map). */
  readonly location: string;
  /** Whether `name` exists in the folder. */
  has(name: string): Promise<boolean>;
  /**
   * The bytes of `name`.
   * @throws {ModelNotFoundError} the file does not exist.
   */
  readBytes(name: string): Promise<Uint8Array>;
  /**
   * The bytes of `name` written into memory the caller provides: `destination(byteLength)` is
   * called once, with the file's size, and returns where the bytes go (e.g. a view of a
   * WebAssembly memory); the file is read into it piece by piece where the loader can, so it is
   * never held twice. Optional: a loader without it is read with {@linkcode ModelLoader.readBytes}.
   * @returns The filled destination.
   * @throws {ModelNotFoundError} the file does not exist.
   * @throws {RangeError} the destination is not `byteLength` bytes.
   */
  readInto?(name: string, destination: (byteLength: number) => Uint8Array): Promise<Uint8Array>;
  /**
   * `name` parsed as JSON.
   * @throws {ModelNotFoundError} the file does not exist.
   * @throws {InvalidModelError} the file is not valid JSON.
   */
  readJson(name: string): Promise<unknown>;
}

const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

function join(location: string, name: string): string {
  return location.endsWith("/") ? location + name : `${location}/${name}`;
}

function checkName(name: string): void {
  if (typeof name !== "string" || name === "" || name.startsWith("/") || name.split("/").includes("..")) {
    throw new TypeError(
      `Cannot read a model file: the name must be a relative path inside the folder, got ${
        JSON.stringify(name)
      }`,
    );
  }
}

abstract class BaseLoader implements ModelLoader {
  abstract readonly location: string;
  abstract has(name: string): Promise<boolean>;
  abstract readBytes(name: string): Promise<Uint8Array>;

  /** {@linkcode ModelLoader.readInto} by copying what {@linkcode ModelLoader.readBytes} returns. */
  async readInto(name: string, destination: (byteLength: number) => Uint8Array): Promise<Uint8Array> {
    const bytes = await this.readBytes(name);
    return fill(destination, bytes.length, (dst) => dst.set(bytes));
  }

  async readJson(name: string): Promise<unknown> {
    const bytes = await this.readBytes(name);
    try {
      return JSON.parse(textDecoder.decode(bytes));
    } catch (cause) {
      throw new InvalidModelError(
        `Cannot read ${name}: ${join(this.location, name)} is not valid JSON, got ${
          JSON.stringify(textDecoder.decode(bytes.subarray(0, 40)))
        }...`,
        { cause },
      );
    }
  }
}

/** Asks `destination` for `byteLength` bytes, checks what it gave and lets `write` fill it. */
async function fill(
  destination: (byteLength: number) => Uint8Array,
  byteLength: number,
  write: (dst: Uint8Array) => void | Promise<void>,
): Promise<Uint8Array> {
  const dst = destination(byteLength);
  if (!(dst instanceof Uint8Array) || dst.length !== byteLength) {
    throw new RangeError(
      `Cannot read a model file into memory: the destination must be a Uint8Array of ${byteLength} bytes, got ${
        dst instanceof Uint8Array ? `${dst.length} bytes` : typeof dst
      }`,
    );
  }
  await write(dst);
  return dst;
}

/** Bytes read per piece by the file system loader's {@linkcode ModelLoader.readInto}. */
const PIECE = 8 << 20;

type Fs = typeof import("node:fs/promises");
let fsPromise: Promise<Fs> | undefined;
function fs(): Promise<Fs> {
  return fsPromise ??= import("node:fs/promises");
}

class FileSystemLoader extends BaseLoader {
  readonly location: string;
  constructor(location: string) {
    super();
    this.location = location;
  }
  async has(name: string): Promise<boolean> {
    checkName(name);
    try {
      return (await (await fs()).stat(join(this.location, name))).isFile();
    } catch {
      return false;
    }
  }
  async readBytes(name: string): Promise<Uint8Array> {
    checkName(name);
    const path = join(this.location, name);
    try {
      // A view of the Buffer node:fs returns (it owns its ArrayBuffer), not a copy: a model file
      // read this way is briefly held once rather than twice.
      const data = await (await fs()).readFile(path);
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    } catch (cause) {
      notFound(name, path, cause);
    }
  }

  /** {@linkcode ModelLoader.readInto}: the file read straight into the destination, 8 MiB at a time. */
  override async readInto(
    name: string,
    destination: (byteLength: number) => Uint8Array,
  ): Promise<Uint8Array> {
    checkName(name);
    const path = join(this.location, name);
    let handle: Awaited<ReturnType<Fs["open"]>>;
    try {
      handle = await (await fs()).open(path, "r");
    } catch (cause) {
      notFound(name, path, cause);
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) {
        notFound(name, path, Object.assign(new Error(`${path} is not a file`), { code: "EISDIR" }));
      }
      const size = stat.size;
      return await fill(destination, size, async (dst) => {
        for (let at = 0; at < size;) {
          const { bytesRead } = await handle.read(dst, at, Math.min(PIECE, size - at), at);
          if (bytesRead === 0) {
            throw new Error(`Cannot read ${name}: ${path} ended after ${at} of ${size} bytes`);
          }
          at += bytesRead;
        }
      });
    } finally {
      await handle.close();
    }
  }
}

function notFound(name: string, path: string, cause: unknown): never {
  const code = (cause as { code?: string }).code;
  if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR") {
    throw new ModelNotFoundError(`Cannot read ${name}: the file does not exist, got ${path}`, path, {
      cause,
    });
  }
  throw cause;
}

class FetchLoader extends BaseLoader {
  readonly location: string;
  constructor(location: string) {
    super();
    this.location = location;
  }
  async has(name: string): Promise<boolean> {
    checkName(name);
    try {
      const response = await fetch(join(this.location, name), { method: "HEAD" });
      await response.body?.cancel();
      return response.ok;
    } catch {
      return false;
    }
  }
  async readBytes(name: string): Promise<Uint8Array> {
    const { response } = await this.#get(name);
    return new Uint8Array(await response.arrayBuffer());
  }

  /** A successful response for `name`, or a ModelNotFoundError naming the URL. */
  async #get(name: string): Promise<{ response: Response; url: string }> {
    checkName(name);
    const url = join(this.location, name);
    let response: Response;
    try {
      response = await fetch(url);
    } catch (cause) {
      throw new ModelNotFoundError(`Cannot read ${name}: fetching failed, got ${url}`, url, { cause });
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new ModelNotFoundError(
        `Cannot read ${name}: the server answered ${response.status} ${response.statusText}, got ${url}`,
        url,
      );
    }
    return { response, url };
  }

  /**
   * {@linkcode ModelLoader.readInto}: the response body streamed into the destination when the
   * server states its length (Content-Length, no Content-Encoding); otherwise read whole and copied.
   */
  override async readInto(
    name: string,
    destination: (byteLength: number) => Uint8Array,
  ): Promise<Uint8Array> {
    const { response, url } = await this.#get(name);
    const length = Number(response.headers.get("content-length") ?? NaN);
    if (!Number.isSafeInteger(length) || response.headers.has("content-encoding") || !response.body) {
      const bytes = new Uint8Array(await response.arrayBuffer());
      return fill(destination, bytes.length, (dst) => dst.set(bytes));
    }
    const reader = response.body.getReader();
    try {
      return await fill(destination, length, async (dst) => {
        let at = 0;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (at + value.length > length) {
            await reader.cancel();
            throw new InvalidModelError(
              `Cannot read ${name}: ${url} sent more than its Content-Length ${length}`,
            );
          }
          dst.set(value, at);
          at += value.length;
        }
        if (at !== length) {
          throw new InvalidModelError(`Cannot read ${name}: ${url} ended after ${at} of ${length} bytes`);
        }
      });
    } catch (error) {
      await reader.cancel().catch(() => {}); // a refused destination: the body is not left open
      throw error;
    }
  }
}

class MemoryLoader extends BaseLoader {
  readonly location = "<memory>";
  readonly #files: Map<string, Uint8Array>;
  constructor(files: ModelFiles) {
    super();
    this.#files = new Map();
    for (const [name, value] of Object.entries(files)) {
      if (typeof value === "string") this.#files.set(name, textEncoder.encode(value));
      else if (value instanceof Uint8Array) this.#files.set(name, value);
      else {
        throw new TypeError(
          `Cannot open an in-memory model folder: ${name} must be a Uint8Array or a string, got ${typeof value}`,
        );
      }
    }
  }
  // deno-lint-ignore require-await
  async has(name: string): Promise<boolean> {
    checkName(name);
    return this.#files.has(name);
  }
  // deno-lint-ignore require-await
  async readBytes(name: string): Promise<Uint8Array> {
    checkName(name);
    const bytes = this.#files.get(name);
    if (bytes === undefined) {
      const known = [...this.#files.keys()].join(", ");
      throw new ModelNotFoundError(
        `Cannot read ${name}: the in-memory folder has no such file (it holds ${known || "nothing"})`,
        `<memory>/${name}`,
      );
    }
    return bytes;
  }
}

function isLoader(source: unknown): source is ModelLoader {
  const s = source as ModelLoader;
  return typeof s === "object" && s !== null && typeof s.readBytes === "function" &&
    typeof s.has === "function" && typeof s.readJson === "function";
}

const URL_LIKE = /^[a-z][a-z0-9+.-]*:/i;

/**
 * Opens a model folder. A local path (or `file:` URL) must be an existing directory; an `http(s):`
 * URL is checked lazily, when a file is read; an in-memory map is used as is (its values must be
 * `Uint8Array` or string).
 *
 * @param source A local path, a `file:` / `http:` / `https:` URL (string or `URL`), an in-memory
 *   map of files, or a ready {@linkcode ModelLoader} (returned unchanged).
 * @returns A loader reading files by name relative to the folder.
 * @throws {ModelNotFoundError} a local folder that does not exist or is not a directory.
 * @throws {TypeError} an unsupported URL scheme or a map value of the wrong type.
 * @example Reading an in-memory folder
 * ```ts
 * import { openModelFolder } from "./loader.ts";
 * import assert from "node:assert/strict";
 * const folder = await openModelFolder({ "config.json": '{"model_type":"gpt2"}' });
 * assert.equal(await folder.has("config.json"), true);
 * assert.deepEqual(await folder.readJson("config.json"), { model_type: "gpt2" });
 * ```
 */
export async function openModelFolder(source: ModelSource): Promise<ModelLoader> {
  if (isLoader(source)) return source;
  let location: string;
  if (source instanceof URL) location = source.href;
  else if (typeof source === "string") location = source;
  else if (typeof source === "object" && source !== null) return new MemoryLoader(source);
  else {throw new TypeError(
      `Cannot open a model folder: expected a path, URL or file map, got ${typeof source}`,
    );}

  // Windows drive letters ("C:\...") are paths, not URL schemes.
  if (URL_LIKE.test(location) && !/^[a-z]:[\\/]/i.test(location)) {
    const url = new URL(location);
    if (url.protocol === "http:" || url.protocol === "https:") {
      return new FetchLoader(url.href.replace(/\/+$/, ""));
    }
    if (url.protocol !== "file:") {
      throw new TypeError(
        `Cannot open a model folder: only file:, http: and https: URLs are supported, got ${url.protocol}`,
      );
    }
    const { fileURLToPath } = await import("node:url");
    location = fileURLToPath(url);
  }
  location = location.replace(/(.)\/+$/, "$1");
  let isDirectory = false;
  try {
    isDirectory = (await (await fs()).stat(location)).isDirectory();
  } catch (cause) {
    throw new ModelNotFoundError(
      `Cannot open a model folder: it does not exist, got ${location}`,
      location,
      { cause },
    );
  }
  if (!isDirectory) {
    throw new ModelNotFoundError(
      `Cannot open a model folder: it is not a directory, got ${location}`,
      location,
    );
  }
  return new FileSystemLoader(location);
}
