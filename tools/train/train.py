"""Train the target (GPT-2) or draft (Llama) model on tools/train/data/{train,val}.npy.
Run with Debian's python3-torch: nice -n 19 /usr/bin/python3 tools/train/train.py target --steps N
"""
import argparse, json, math, os, time
import numpy as np
import torch
import torch.nn.functional as F
from model import build, target_config, draft_config

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument('kind', choices=['target', 'draft'])
ap.add_argument('--steps', type=int, default=1000)
ap.add_argument('--batch', type=int, default=16)
ap.add_argument('--ctx', type=int, default=256)
ap.add_argument('--lr', type=float, default=3e-3)
ap.add_argument('--min-lr-frac', type=float, default=0.1)
ap.add_argument('--warmup', type=int, default=50)
ap.add_argument('--wd', type=float, default=0.1)
ap.add_argument('--seed', type=int, default=1234)
ap.add_argument('--threads', type=int, default=2)
ap.add_argument('--eval-every', type=int, default=200)
ap.add_argument('--bench', type=int, default=0, help='only time this many steps and exit')
ap.add_argument('--out', default=None)
ap.add_argument('--max-minutes', type=float, default=0, help='safety stop: save and exit early')
ap.add_argument('--init', default=None, help='start from the weights of this checkpoint (a second training stage)')
args = ap.parse_args()

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)
train = torch.from_numpy(np.load(os.path.join(here, 'data', 'train.npy')).astype(np.int64))
val = torch.from_numpy(np.load(os.path.join(here, 'data', 'val.npy')).astype(np.int64))
cfg = target_config() if args.kind == 'target' else draft_config()
model = build(args.kind, cfg)
if args.init:
    model.load_state_dict(torch.load(args.init)['state_dict'])
n_params = sum(p.numel() for p in model.parameters())
print(f'{args.kind}: {n_params:,} params; train tokens {len(train):,}, val tokens {len(val):,}', flush=True)

decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{'params': decay, 'weight_decay': args.wd},
                         {'params': no_decay, 'weight_decay': 0.0}], lr=args.lr, betas=(0.9, 0.95))
T = args.ctx
pos = torch.arange(T).unsqueeze(0).expand(args.batch, T)
amask = torch.ones(args.batch, T, dtype=torch.long)


def lr_at(step):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def loss_on(x, y):
    b = x.shape[0]
    logits, _ = model(x, amask[:b], pos[:b])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def evaluate(data, max_windows=64):
    model.eval()
    n = min(max_windows, (len(data) - 1) // T)
    starts = np.linspace(0, len(data) - T - 1, n).astype(np.int64)  # fixed, evenly spread windows
    tot = 0.0
    for i in range(0, n, args.batch):
        s = starts[i:i + args.batch]
        x = torch.stack([data[j:j + T] for j in s]); y = torch.stack([data[j + 1:j + T + 1] for j in s])
        tot += loss_on(x, y).item() * len(s)
    model.train()
    return tot / n


log = []
t0 = time.time()
out = args.out or os.path.join(here, 'ckpt', f'{args.kind}.pt')
os.makedirs(os.path.dirname(out), exist_ok=True)


def save(step_done):
    torch.save({'config': cfg, 'state_dict': model.state_dict(), 'args': vars(args), 'log': log,
                'n_params': n_params, 'steps_done': step_done, 'train_seconds': time.time() - t0}, out)

steps = args.bench or args.steps
for step in range(steps):
    for g in opt.param_groups:
        g['lr'] = lr_at(step)
    ix = rng.integers(0, len(train) - T - 1, size=args.batch)
    x = torch.stack([train[j:j + T] for j in ix]); y = torch.stack([train[j + 1:j + T + 1] for j in ix])
    loss = loss_on(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if step % 20 == 0 or step == steps - 1:
        el = time.time() - t0
        print(f'step {step} loss {loss.item():.4f} lr {lr_at(step):.2e} {el:.0f}s '
              f'{(step + 1) * args.batch * T / el:.0f} tok/s', flush=True)
    if not args.bench and ((step + 1) % args.eval_every == 0 or step == steps - 1):
        tr, va = evaluate(train), evaluate(val)
        print(f'eval step {step + 1}: train {tr:.4f} val {va:.4f}', flush=True)
        log.append({'step': step + 1, 'train_loss': tr, 'val_loss': va, 'elapsed_s': time.time() - t0})
        save(step + 1)
    if args.max_minutes and time.time() - t0 > args.max_minutes * 60 and step < steps - 1:
        print(f'max-minutes reached at step {step + 1}: stopping early', flush=True)
        tr, va = evaluate(train), evaluate(val)
        print(f'eval step {step + 1}: train {tr:.4f} val {va:.4f}', flush=True)
        log.append({'step': step + 1, 'train_loss': tr, 'val_loss': va, 'elapsed_s': time.time() - t0})
        break
if args.bench:
    raise SystemExit
save(step + 1)
print(f'saved {out}; train time {time.time() - t0:.0f}s', flush=True)
