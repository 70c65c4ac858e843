"""Checks that the unrolled training forward (model.Drafter.unrolled) equals drafting with a KV cache
(model.incremental) at every depth and base position: the training-time test trains what inference runs.
  /usr/bin/python3 check_ttt.py"""
import torch
from model import Drafter, incremental

torch.manual_seed(0)
V, d = 50, 16
E = torch.randn(V, d)
m = Drafter(E, torch.arange(0, V, 2), hidden=24, inter=40, heads=4, kv_heads=2, head_dim=6, feat_layers=3).eval()
for p in m.parameters():
    torch.nn.init.normal_(p, std=0.3)
T, steps = 9, 4
feats = torch.randn(1, T, 3 * d)
toks = torch.randint(0, V, (1, T))
with torch.no_grad():
    outs = m.unrolled(feats, toks, torch.ones(1, T, dtype=torch.bool), steps)
    worst = 0.0
    for base in range(T):
        # depth 0 from target features at positions 0..base
        g, cache = incremental(m, m.fuse(feats[:, :base + 1]), toks[:, :base + 1], torch.arange(base + 1).float(), None)
        worst = max(worst, float((g[0, base] - outs[0][0, base]).abs().max()))
        prev = g[:, base:base + 1]
        for s in range(1, steps):
            i = base + s
            if i >= T:
                break
            g, cache = incremental(m, prev, toks[:, i:i + 1], torch.tensor([float(i)]), cache)
            worst = max(worst, float((g[0, 0] - outs[s][0, i]).abs().max()))
            prev = g
print(f'max |unrolled - incremental| over all bases and depths: {worst:.2e}')
assert worst < 1e-4, worst
