"""Checks the built drafter graphs (models/smollm2-eagle/onnx: fuse.onnx, model.onnx fp32,
model_quantized.onnx q8) against the PyTorch drafter they were exported from, on real held-out
features: a prefill of the first 40 positions of an eval row with target features, then 3 draft steps
fed with the drafter's own hidden_out (depths 1..3), batch 1. Prints max |Δ| of draft_logits and
hidden_out per step and the argmax agreement (Debian /usr/bin/python3 needs onnxruntime: run with the
pyenv python3, which has onnxruntime, and torch from Debian's dist-packages on the path).
  PYTHONPATH=/usr/lib/python3/dist-packages python3 verify.py --ckpt /tmp/eagle/ckpt/drafter.pt
"""
import argparse, glob, os, sys
import numpy as np
import onnxruntime as ort
import torch
from model import Drafter, incremental

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, '..', '..', '..'))
ap = argparse.ArgumentParser()
ap.add_argument('--ckpt', default='/tmp/eagle/ckpt/drafter.pt')
ap.add_argument('--prep', default='/tmp/eagle/prep.npz')
ap.add_argument('--eval', default='/tmp/eagle/eval')
ap.add_argument('--folder', default=os.path.join(root, 'models', 'smollm2-eagle'))
args = ap.parse_args()
prep = np.load(args.prep)
m = Drafter(torch.from_numpy(prep['E']), torch.from_numpy(prep['d2t'].astype(np.int64)))
m.load_state_dict(torch.load(args.ckpt)['state_dict'])
# the exported weights are float16: compare against the rounded model
with torch.no_grad():
    for p in m.parameters():
        p.copy_(p.half().float())
m.eval()
z = np.load(sorted(glob.glob(os.path.join(args.eval, 'shard_*.npz')))[0])
n = 40
ids = z['ids'][:n + 5].astype(np.int64)
feats = z['feats'][:n].astype(np.float32)
fuse = ort.InferenceSession(os.path.join(args.folder, 'onnx', 'fuse.onnx'), providers=['CPUExecutionProvider'])
u_onnx = fuse.run(['hidden_states'], {'target_hidden': feats[None]})[0]
with torch.no_grad():
    u_t = m.fuse(torch.from_numpy(feats)[None])
print(f'fuse: max |Δ| {np.abs(u_onnx - u_t.numpy()).max():.2e} (max |u| {np.abs(u_t.numpy()).max():.2f})')
for graph in ('model.onnx', 'model_quantized.onnx'):
    path = os.path.join(args.folder, 'onnx', graph)
    if not os.path.exists(path):
        continue
    s = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    feeds = {'input_ids': ids[1:n + 1][None], 'hidden_states': u_t.numpy(), 'attention_mask': np.ones((1, n), np.int64),
             'position_ids': np.arange(n)[None], 'past_key_values.0.key': np.zeros((1, 3, 0, 64), np.float32),
             'past_key_values.0.value': np.zeros((1, 3, 0, 64), np.float32)}
    names = ['draft_logits', 'hidden_out', 'present.0.key', 'present.0.value']
    with torch.no_grad():
        g, cache = incremental(m, u_t, torch.from_numpy(ids[1:n + 1])[None], torch.arange(n).float(), None)
    agree, worst_l, worst_h = 0, 0.0, 0.0
    for step in range(4):
        lo, ho, pk, pv = s.run(names, feeds)
        lt = m.head_logits(g[:, -1:]).detach().numpy()
        worst_l = max(worst_l, float(np.abs(lo - lt).max()))
        worst_h = max(worst_h, float(np.abs(ho[:, -1] - g[:, -1].numpy()).max()))
        agree += int(lo.argmax() == lt.argmax())
        # next depth: own hidden_out, a token from the row (any token works for the check)
        tok = ids[n + 1 + step]
        P = n + step
        feeds = {'input_ids': np.array([[tok]]), 'hidden_states': ho[:, -1:], 'attention_mask': np.ones((1, P + 1), np.int64),
                 'position_ids': np.array([[P]]), 'past_key_values.0.key': pk, 'past_key_values.0.value': pv}
        with torch.no_grad():
            g, cache = incremental(m, g[:, -1:], torch.tensor([[tok]]), torch.tensor([float(P)]), cache)
    print(f'{graph}: prefill {n} + 3 own-feature steps: max |Δ draft_logits| {worst_l:.2e}, max |Δ hidden_out| '
          f'{worst_h:.2e}, argmax agrees {agree}/4')
