"""Simplify an exported model folder's ONNX graph with onnx-simplifier (constant-folds the shape
arithmetic that torch.onnx.export emits for dynamic shapes: Shape / Gather / Unsqueeze / Concat chains).

Used for the draft only: its step is dominated by per-node overhead (0.44 M parameters, 277 nodes ->
171), so fewer nodes make it measurably cheaper (onnxruntime-web WASM 0.323 -> 0.300 ms, onnxruntime-node
0.272 -> 0.233 ms per step at past 64); the target's step did not get faster (3.13 -> 3.17 ms), so it
is left as exported. Inputs, outputs and weights are unchanged; verify_onnx.ts re-checks the logits.

Run (pyenv python3 with `pip install onnx onnxsim`; recorded: onnx 1.23.2, onnxsim 0.8.1):
    python3 tools/train/simplify.py draft
"""
import argparse
import os

import onnx
import onnxsim

ap = argparse.ArgumentParser()
ap.add_argument('kind', nargs='?', choices=['target', 'draft'])
ap.add_argument('--dir', default=None, help='a model folder instead of models/<kind> (e.g. models/smollm2-draft)')
args = ap.parse_args()
if args.dir is None and args.kind is None:
    ap.error('give a kind or --dir')
if args.dir is not None:
    path = os.path.join(args.dir, 'onnx', 'model.onnx')
    args.kind = args.dir
else:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'models', args.kind, 'onnx', 'model.onnx')
model = onnx.load(path)
simplified, ok = onnxsim.simplify(model)
if not ok:
    raise SystemExit(f'onnxsim could not validate the simplified {args.kind} graph')
onnx.checker.check_model(simplified, full_check=True)
names = lambda vs: [v.name for v in vs]
assert names(simplified.graph.input) == names(model.graph.input), 'inputs changed'
assert names(simplified.graph.output) == names(model.graph.output), 'outputs changed'
onnx.save(simplified, path)
print(f'{args.kind}: {len(model.graph.node)} -> {len(simplified.graph.node)} nodes; {os.path.getsize(path)} bytes')
