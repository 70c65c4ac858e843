"""Held-out acceptance of the SmolLM2 draft (see metrics.py): per-token alpha = 1 - TV(p_T, q_T) on the
target's own continuations of the 32 eval prompts (never in training) at T = 0.7 and T = 1.0, the
expected block efficiency of speculative sampling for L = 2..6, and the head's coverage of p.
  /usr/bin/python3 evaluate.py --ckpt /tmp/smollm2_draft/ckpt/draft.pt
"""
import argparse, json
import numpy as np
import torch
from draft_model import SmolDraft
from data import load_rows
from metrics import report

ap = argparse.ArgumentParser()
ap.add_argument('--ckpt', default='/tmp/smollm2_draft/ckpt/draft.pt')
ap.add_argument('--eval', default='/tmp/smollm2_draft/eval')
args = ap.parse_args()
torch.set_num_threads(2)
ck = torch.load(args.ckpt, map_location='cpu')
model = SmolDraft(ck['config'])
model.load_state_dict(ck['state_dict'])
rows = load_rows(args.eval)
res = report(model, rows)
inhead = np.zeros(49152, bool)
inhead[model.head_ids.numpy()] = True
for T in (0.7, 1.0):
    rs = [r for r in rows if abs(r['temp'] - T) < 1e-6]
    cov = np.concatenate([(np.exp(r['tlogp'] / T) / np.exp(r['tlogp'] / T).sum(1, keepdims=True) * inhead[r['tk']]).sum(1) for r in rs])
    gen_in = np.concatenate([inhead[r['ids'][r['plen']:]] for r in rs])
    res[f'T{T}']['head_coverage_of_p'] = float(cov.mean())
    res[f'T{T}']['sampled_tokens_in_head'] = float(gen_in.mean())
res['ckpt'] = {k: ck.get(k) for k in ('steps_done', 'train_seconds', 'train_rows', 'train_gen_tokens', 'n_params')}
print(json.dumps(res, indent=1))
