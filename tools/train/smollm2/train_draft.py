"""On-policy distillation of the SmolLM2-135M-Instruct draft (Debian /usr/bin/python3 with torch).

Data: sample_target.py shards (the target's own continuations + its top-64 T=1 log-probs at every
generated position). Objective at each generated position: cross-entropy of the draft's head
distribution q against the target's stored top-k probabilities p (= KL(p || q) up to p's entropy; the
top-k tokens outside the draft's head are dropped). Prompt positions are context only.
LR: linear warm-up, then cosine to --min-lr-frac, driven by progress = max(step / steps,
elapsed / max-minutes), so a time-limited run still finishes its schedule.
  /usr/bin/python3 train_draft.py --init /tmp/smollm2_draft/init.npz --steps 3000 --max-minutes 25
"""
import argparse, json, math, os, sys, time
import numpy as np
import torch
from draft_model import SmolDraft, smol_draft_config
from data import load_rows
from metrics import report

ap = argparse.ArgumentParser()
ap.add_argument('--data', default='/tmp/smollm2_draft/train')
ap.add_argument('--eval', default='/tmp/smollm2_draft/eval')
ap.add_argument('--init', default='/tmp/smollm2_draft/init.npz')
ap.add_argument('--out', default='/tmp/smollm2_draft/ckpt/draft.pt')
ap.add_argument('--resume', default=None, help='start from this checkpoint\'s weights')
ap.add_argument('--layers', type=int, default=2)
ap.add_argument('--hidden', type=int, default=256)
ap.add_argument('--inter', type=int, default=512)
ap.add_argument('--heads', type=int, default=4)
ap.add_argument('--kv-heads', type=int, default=2)
ap.add_argument('--steps', type=int, default=3000)
ap.add_argument('--batch', type=int, default=12, help='rows (prompt + continuation) per step')
ap.add_argument('--lr', type=float, default=3e-3)
ap.add_argument('--min-lr-frac', type=float, default=0.05)
ap.add_argument('--warmup', type=int, default=60)
ap.add_argument('--wd', type=float, default=0.01)
ap.add_argument('--norm-init', type=float, default=0.01, help='initial final-RMSNorm weight (logit scale)')
ap.add_argument('--seed', type=int, default=1234)
ap.add_argument('--threads', type=int, default=2)
ap.add_argument('--eval-every', type=int, default=400)
ap.add_argument('--reload-every', type=int, default=200, help='pick up new shards (sampling still running)')
ap.add_argument('--max-minutes', type=float, default=0)
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)

init = np.load(args.init)
head_ids = init['head_ids']
K = len(head_ids)
cfg = smol_draft_config(layers=args.layers, hidden=args.hidden, heads=args.heads, kv_heads=args.kv_heads,
                        head_dim=args.hidden // args.heads, inter=args.inter, head_k=K)
model = SmolDraft(cfg, torch.from_numpy(head_ids))
if args.resume:
    model.load_state_dict(torch.load(args.resume)['state_dict'])
else:
    assert init['emb'].shape == (K + 1, args.hidden), init['emb'].shape
    with torch.no_grad():
        model.embed_tokens.weight.copy_(torch.from_numpy(init['emb']))
        model.norm.weight.fill_(args.norm_init)
n_params = sum(p.numel() for p in model.parameters())
print(f'draft: {n_params:,} params, head K={K}, cfg {json.dumps({k: cfg[k] for k in ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim")})}', flush=True)

files_seen = set()
rows = []


def reload():
    import glob
    new = sorted(set(glob.glob(os.path.join(args.data, '*.npz'))) - files_seen)
    if not new:
        return
    tmpdir = os.path.join('/tmp/smollm2_draft', '_reload')
    # load only the new files
    for f in new:
        files_seen.add(f)
    os.makedirs(tmpdir, exist_ok=True)
    for f in new:
        link = os.path.join(tmpdir, os.path.basename(f))
        if not os.path.exists(link):
            os.symlink(f, link)
    rows.extend(load_rows(tmpdir, head_ids))
    for f in os.listdir(tmpdir):
        os.remove(os.path.join(tmpdir, f))


reload()
eval_rows = load_rows(args.eval)
n_gen = sum(r['glen'] for r in rows)
print(f'train rows {len(rows)}, generated tokens {n_gen:,}; eval rows {len(eval_rows)}', flush=True)

decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{'params': decay, 'weight_decay': args.wd}, {'params': no_decay, 'weight_decay': 0.0}],
                        lr=args.lr, betas=(0.9, 0.95))
t0 = time.time()


def progress(step):
    p = step / args.steps
    if args.max_minutes:
        p = max(p, (time.time() - t0) / (args.max_minutes * 60))
    return min(p, 1.0)


def lr_at(step):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p = progress(step)
    return args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def batch_loss(rb):
    L = max(len(r['ids']) for r in rb)
    ids = torch.full((len(rb), L), 2, dtype=torch.long)
    for b, r in enumerate(rb):
        ids[b, :len(r['ids'])] = torch.from_numpy(r['ids'])
    am = torch.ones(len(rb), L, dtype=torch.long)   # right padding: causal attention never sees it
    pos = torch.arange(L).unsqueeze(0).expand(len(rb), L)
    h, _ = model.hidden(ids, am, pos)
    hs = torch.cat([h[b, r['plen'] - 1:r['plen'] - 1 + r['glen']] for b, r in enumerate(rb)])
    tk = torch.from_numpy(np.concatenate([r['tk'] for r in rb]))                 # [N, k] head cols / -1
    tp = torch.from_numpy(np.exp(np.concatenate([r['tlogp'] for r in rb])))      # [N, k]
    lq = torch.log_softmax(model.head_logits(hs), -1)                            # [N, K]
    inh = tk >= 0
    w = torch.where(inh, tp, torch.zeros(()))
    lqk = lq.gather(1, tk.clamp(min=0))
    ce = -(w * lqk).sum(1)
    ent = -(w * torch.where(inh, tp.clamp_min(1e-30).log(), torch.zeros(()))).sum(1)
    with torch.no_grad():
        alpha = torch.minimum(w, lqk.exp()).sum(1).mean()
    return ce.mean(), (ce - ent).mean().item(), alpha.item(), hs.shape[0]


log = []


def save(step):
    torch.save({'config': cfg, 'state_dict': model.state_dict(), 'args': vars(args), 'log': log,
                'n_params': n_params, 'steps_done': step, 'train_seconds': time.time() - t0,
                'train_rows': len(rows), 'train_gen_tokens': sum(r['glen'] for r in rows)}, args.out)


os.makedirs(os.path.dirname(args.out), exist_ok=True)
seen = 0
ema = None
for step in range(args.steps):
    if args.reload_every and step and step % args.reload_every == 0:
        before = len(rows)
        reload()
        if len(rows) > before:
            print(f'reload: {len(rows) - before} new rows -> {len(rows)} rows, '
                  f'{sum(r["glen"] for r in rows):,} generated tokens', flush=True)
    for g in opt.param_groups:
        g['lr'] = lr_at(step)
    rb = [rows[i] for i in rng.integers(0, len(rows), size=args.batch)]
    loss, kl, alpha, n = batch_loss(rb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    seen += n
    ema = (kl, alpha) if ema is None else (0.98 * ema[0] + 0.02 * kl, 0.98 * ema[1] + 0.02 * alpha)
    if step % 25 == 0:
        el = time.time() - t0
        print(f'step {step} ce {loss.item():.4f} kl~ {kl:.4f} alpha~ {alpha:.3f} (ema kl {ema[0]:.3f} alpha '
              f'{ema[1]:.3f}) lr {lr_at(step):.2e} {el:.0f}s {seen / el:.0f} pos/s', flush=True)
    last = step == args.steps - 1 or (args.max_minutes and progress(step) >= 1.0)
    if (step + 1) % args.eval_every == 0 or last:
        r = report(model, eval_rows)
        print(f'eval step {step + 1}: ' + json.dumps(r), flush=True)
        log.append({'step': step + 1, 'elapsed_s': time.time() - t0, 'train_kl_ema': ema[0],
                    'train_alpha_ema': ema[1], 'eval': r, 'positions_seen': seen})
        save(step + 1)
    if last:
        break
print(f'saved {args.out}; {step + 1} steps, {seen:,} positions, {time.time() - t0:.0f}s', flush=True)
