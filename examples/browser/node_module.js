// Stand-in for Node's `node:module` in the browser (mapped by index.html's import map).
// spectr's edge bundle is built for Deno (`deno bundle --platform deno`): esbuild's `require` shim
// imports `createRequire` from "node:module" at load time. In a browser nothing is ever `require`d
// on the wasm path (onnxruntime-web's Node-only branches are not taken), so the stand-in's
// `require` only throws, naming the module asked for.

/**
 * @param {string | URL} from The module that asks.
 * @returns {(name: string) => never} A `require` that throws.
 */
export function createRequire(from) {
  return function require(name) {
    throw new Error(`Cannot require(${JSON.stringify(name)}) in a browser (asked by ${from})`);
  };
}

export default { createRequire };
