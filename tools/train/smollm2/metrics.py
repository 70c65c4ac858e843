"""Acceptance of a draft against the target's stored distributions (eval shards, top-256 log-probs).

alpha at a position = sum_x min(p_T(x), q_T(x)) = 1 - TV(p_T, q_T), over the stored top-k tokens of p
(a lower bound: the target mass outside its top-256 is not counted; at T = 0.7 p_T is renormalised
over the top-256). Block efficiency of speculative sampling with L draft tokens, from the per-position
acceptances along each continuation: E_L = mean over starts t of sum_{i=0..L} prod_{j<i} alpha_{t+j}.
"""
import numpy as np
import torch


@torch.no_grad()
def alphas_for_rows(model, rows, temp, batch=8):
    """rows: from data.load_rows with head_ids=None (tk = token ids). Returns list of np arrays (per row)."""
    out = []
    model.eval()
    for i in range(0, len(rows), batch):
        rb = rows[i:i + batch]
        L = max(len(r['ids']) for r in rb)
        ids = torch.full((len(rb), L), 2, dtype=torch.long)
        for b, r in enumerate(rb):
            ids[b, :len(r['ids'])] = torch.from_numpy(r['ids'])
        am = torch.ones(len(rb), L, dtype=torch.long)
        pos = torch.arange(L).unsqueeze(0).expand(len(rb), L)
        h, _ = model.hidden(ids, am, pos)
        for b, r in enumerate(rb):
            hp = h[b, r['plen'] - 1:r['plen'] - 1 + r['glen']]           # predicts gen tokens 0..glen-1
            lq = torch.log_softmax(model.head_logits(hp) / temp, -1)     # [glen, K]
            col = model.in_map[torch.from_numpy(r['tk'])].long()                # [glen, k], K = outside head
            K = lq.shape[1]
            qk = torch.where(col < K, lq.gather(1, col.clamp(max=K - 1)).exp(), torch.zeros(()))
            lp = torch.from_numpy(r['tlogp']).double() / temp
            pk = torch.softmax(lp, -1) if temp != 1.0 else lp.exp()
            out.append(torch.minimum(pk, qk.double()).sum(1).numpy())
    model.train()
    return out


def block_efficiency(alpha_rows, L):
    vals = []
    for a in alpha_rows:
        for t in range(0, len(a) - L + 1):
            e, pr = 1.0, 1.0
            for j in range(L):
                pr *= a[t + j]
                e += pr
            vals.append(e)
    return float(np.mean(vals))


def report(model, eval_rows, Ls=(2, 3, 4, 5, 6)):
    res = {}
    for T in (0.7, 1.0):
        rows = [r for r in eval_rows if abs(r['temp'] - T) < 1e-6]
        a = alphas_for_rows(model, rows, T)
        allv = np.concatenate(a)
        res[f'T{T}'] = {'alpha': float(allv.mean()), 'positions': int(len(allv)), 'rows': len(rows),
                        **{f'E_L{L}': block_efficiency(a, L) for L in Ls}}
    return res
