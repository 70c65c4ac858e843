/**
 * The session worker of `worker: true` (see src/backend/ort/worker.ts): a module
 * Worker that owns one onnxruntime-web (wasm) session, so that its forwards, which compute
 * synchronously on the thread that calls `run`, leave the main thread free. Messages: see
 * src/backend/ort/_worker_protocol.ts. Internal: not part of the public API.
 *
 * @module
 */
import type * as OrtWeb from "npm:onnxruntime-web@1.30.0";
import * as ortModule from "npm:onnxruntime-web@1.30.0";
import {
  type FromWorker,
  type ToWorker,
  wholeBuffer,
  type WireData,
  type WireMetadata,
  type WireTensor,
} from "./_worker_protocol.ts";

const ort: typeof OrtWeb =
  (ortModule as unknown as { InferenceSession?: unknown }).InferenceSession === undefined
    ? (ortModule as unknown as { default: typeof OrtWeb }).default
    : ortModule;

/** The worker's global scope, typed here so the file checks with the default (window) lib. */
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  close(): void;
};

let session: OrtWeb.InferenceSession | undefined;
/** Messages are handled one at a time, in order (the main thread already serialises runs). */
let queue: Promise<void> = Promise.resolve();

scope.onmessage = (event) => {
  const message = event.data;
  queue = queue.then(() => handle(message)).catch((error) => {
    // handle() answers every failure itself; this is a last resort, never silent
    console.error("spectr session worker:", error);
  });
};

function messageOf(error: unknown): string {
  return String((error as Error)?.message ?? error);
}

function metadata(names: readonly string[], raw: unknown): WireMetadata[] {
  const list = Array.isArray(raw) ? raw : [];
  return names.map((name, i) => {
    const m = list.find((x: { name?: string }) => x?.name === name) ?? list[i];
    if (!m || typeof m !== "object" || m.name !== name) return { name };
    return {
      name,
      type: typeof m.type === "string" ? m.type : undefined,
      shape: Array.isArray(m.shape)
        ? m.shape.map((d: unknown) => (typeof d === "number" ? d : String(d)))
        : undefined,
    };
  });
}

async function handle(message: ToWorker): Promise<void> {
  if (message.kind === "create") {
    try {
      const { numThreads, wasmPaths, wasmBinary } = message.env;
      if (numThreads !== undefined) ort.env.wasm.numThreads = numThreads;
      if (wasmPaths !== undefined) ort.env.wasm.wasmPaths = wasmPaths;
      if (wasmBinary !== undefined) ort.env.wasm.wasmBinary = wasmBinary;
      const options: OrtWeb.InferenceSession.SessionOptions = { executionProviders: ["wasm"] };
      if (message.externalData?.length) options.externalData = message.externalData;
      session = await ort.InferenceSession.create(message.model, options);
    } catch (error) {
      scope.postMessage({ kind: "createFailed", message: messageOf(error) });
      return;
    }
    scope.postMessage({
      kind: "created",
      inputNames: [...session.inputNames],
      outputNames: [...session.outputNames],
      inputMetadata: metadata(session.inputNames, (session as { inputMetadata?: unknown }).inputMetadata),
      outputMetadata: metadata(session.outputNames, (session as { outputMetadata?: unknown }).outputMetadata),
    });
  } else {
    const { id } = message;
    const wire: Record<string, WireTensor> = {};
    const transfer: ArrayBuffer[] = [];
    try {
      if (session === undefined) throw new Error("the session worker holds no session");
      const feeds: Record<string, OrtWeb.Tensor> = {};
      for (const [name, t] of Object.entries(message.feeds)) {
        feeds[name] = new ort.Tensor(t.type as "float32", t.data as Float32Array, t.dims);
      }
      const outputs = message.fetches === undefined
        ? await session.run(feeds)
        : await session.run(feeds, message.fetches);
      for (const [name, tensor] of Object.entries(outputs)) {
        const data = wholeBuffer(tensor.data as WireData);
        wire[name] = { type: tensor.type, dims: [...tensor.dims], data };
        if (!transfer.includes(data.buffer as ArrayBuffer)) transfer.push(data.buffer as ArrayBuffer);
      }
    } catch (error) {
      scope.postMessage({ kind: "runFailed", id, message: messageOf(error) });
      return;
    }
    // zero-copy: the output buffers move to the main thread
    scope.postMessage({ kind: "ran", id, outputs: wire }, transfer);
  }
}
