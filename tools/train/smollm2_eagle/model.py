"""The feature drafter in PyTorch, exactly the math of docs/eagle_drafter.md (the ONNX graphs built by
src/convert/eagle_onnx.ts compute the same), plus the unrolled "training-time test" forward (EAGLE-3,
arXiv 2503.01840): depth s at position i reads the depth s-1 output of position i-1 and attends to the
depth-0 entries of positions <= i-s plus its own chain (depth t entry of position i-s+t, t = 1..s),
which is what the drafter's KV cache holds when it drafts token s+1 of a block at inference.
"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-5


def rms(x):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS)


class Drafter(nn.Module):
    def __init__(self, E, d2t, hidden=576, inter=1536, heads=9, kv_heads=3, head_dim=64, feat_layers=3,
                 rope_theta=100000.0):
        super().__init__()
        self.H, self.KVH, self.D = heads, kv_heads, head_dim
        self.hidden = hidden
        self.register_buffer('E', E, persistent=False)                 # [V, d] frozen
        self.register_buffer('d2t', d2t, persistent=False)             # [K] long
        self.fc = nn.Linear(feat_layers * E.shape[1], hidden, bias=False)
        self.in_proj = nn.Linear(E.shape[1] + hidden, hidden, bias=True)
        self.input_norm = nn.Parameter(torch.ones(hidden))
        self.post_norm = nn.Parameter(torch.ones(hidden))
        self.q = nn.Linear(hidden, heads * head_dim, bias=False)
        self.k = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.v = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.o = nn.Linear(heads * head_dim, hidden, bias=False)
        self.gate = nn.Linear(hidden, inter, bias=False)
        self.up = nn.Linear(hidden, inter, bias=False)
        self.down = nn.Linear(inter, hidden, bias=False)
        self.norm = nn.Parameter(torch.ones(hidden))
        self.inv_freq = 1.0 / rope_theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
        for m in [self.fc, self.in_proj, self.q, self.k, self.v, self.o, self.gate, self.up, self.down]:
            nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(self.in_proj.bias)

    def state_for_export(self):
        """Tensors under the names of drafter.safetensors."""
        L = 'layer.'
        return {'fc.weight': self.fc.weight, 'in_proj.weight': self.in_proj.weight, 'in_proj.bias': self.in_proj.bias,
                L + 'input_norm.weight': self.input_norm, L + 'post_norm.weight': self.post_norm,
                L + 'q.weight': self.q.weight, L + 'k.weight': self.k.weight, L + 'v.weight': self.v.weight,
                L + 'o.weight': self.o.weight, L + 'gate.weight': self.gate.weight, L + 'up.weight': self.up.weight,
                L + 'down.weight': self.down.weight, 'norm.weight': self.norm}

    def fuse(self, f):
        """f [B, T, 3·576] raw target features -> u [B, T, hidden]."""
        d = self.E.shape[1]
        parts = [rms(f[..., j * d:(j + 1) * d]) for j in range(f.shape[-1] // d)]
        return self.fc(torch.cat(parts, -1))

    def rope(self, x, pos):
        """x [B, h, T, D], pos [T] (float) -> rotate-half RoPE."""
        ang = pos[:, None] * self.inv_freq[None, :]                    # [T, D/2]
        cos, sin = torch.cos(ang).repeat(1, 2), torch.sin(ang).repeat(1, 2)
        x1, x2 = x[..., :self.D // 2], x[..., self.D // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def head_logits(self, g):
        """g [.., hidden] -> draft-vocabulary logits [.., K] (frozen head = E[d2t])."""
        return (rms(g) * self.norm) @ self.E[self.d2t].T

    def qkv(self, u, tok, pos):
        B, T, _ = u.shape
        z = self.in_proj(torch.cat([self.E[tok], u], -1))
        hN = rms(z) * self.input_norm
        q = self.q(hN).view(B, T, self.H, self.D).transpose(1, 2)
        k = self.k(hN).view(B, T, self.KVH, self.D).transpose(1, 2)
        v = self.v(hN).view(B, T, self.KVH, self.D).transpose(1, 2)
        return z, self.rope(q, pos), self.rope(k, pos), v

    def finish(self, z, ctx):
        B, H, T, D = ctx.shape
        a = z + self.o(ctx.transpose(1, 2).reshape(B, T, H * D))
        m = rms(a) * self.post_norm
        return a + self.down(F.silu(self.gate(m)) * self.up(m))

    def unrolled(self, feats, toks, valid, steps):
        """Training-time test. feats [B, T, 1728] (position i's target features), toks [B, T] (x_{i+1}),
        valid [B, T] bool. Returns the depth-s outputs g^s [B, T, hidden], s = 0..steps-1: g^s at position i
        is the state of a block whose base is position i-s, drafting its token s+1, whose logits predict
        x_{i+2} (positions i < s have no such block: mask them out)."""
        B, T, _ = feats.shape
        pos = torch.arange(T, dtype=torch.float32)
        rep = self.H // self.KVH
        scale = 1.0 / math.sqrt(self.D)
        u = self.fuse(feats)
        outs = []
        Ks, Vs = [], []
        idx = torch.arange(T)
        for s in range(steps):
            z, q, k, v = self.qkv(u, toks, pos)
            k = k.repeat_interleave(rep, 1)
            v = v.repeat_interleave(rep, 1)
            if s == 0:
                K0, V0 = k, v
                allowed = (idx[None, :] <= idx[:, None])[None, None] & valid[:, None, None, :]
                sc = (q @ K0.transpose(-1, -2)) * scale
                sc = sc.masked_fill(~allowed, float('-inf'))
                ctx = torch.softmax(sc, -1) @ V0
            else:
                # depth-0 keys at positions j <= i - s
                allowed = (idx[None, :] <= idx[:, None] - s)[None, None] & valid[:, None, None, :]
                sc0 = (q @ K0.transpose(-1, -2)) * scale
                sc0 = sc0.masked_fill(~allowed, float('-inf'))
                chain_k = Ks + [k]                                     # depth t = 1..s entries
                chain_v = Vs + [v]
                diag = []
                for t in range(1, s + 1):
                    kt = torch.roll(chain_k[t - 1], shifts=s - t, dims=2)   # position i holds K_t[i-(s-t)]
                    diag.append(((q * kt).sum(-1) * scale).unsqueeze(-1))
                sc = torch.cat([sc0] + diag, -1)
                p = torch.softmax(sc, -1)
                p = torch.nan_to_num(p)
                ctx = p[..., :T] @ V0
                for t in range(1, s + 1):
                    vt = torch.roll(chain_v[t - 1], shifts=s - t, dims=2)
                    ctx = ctx + p[..., T + t - 1:T + t] * vt
                Ks.append(k)
                Vs.append(v)
            g = self.finish(z, ctx)
            outs.append(g)
            # next depth: position i reads g of position i-1
            u = torch.cat([torch.zeros_like(g[:, :1]), g[:, :-1]], 1)
        return outs


@torch.no_grad()
def incremental(model, u, toks, pos, cache):
    """Inference as the ONNX graph runs it: one or more positions appended to a KV cache (a list
    [K, V] of [B, kvh, P, D] tensors after RoPE, or None). u [B, S, hidden], toks [B, S], pos [S] float.
    Returns (g [B, S, hidden], new cache)."""
    z, q, k, v = model.qkv(u, toks, pos)
    if cache is not None:
        k = torch.cat([cache[0], k], 2)
        v = torch.cat([cache[1], v], 2)
    rep = model.H // model.KVH
    kk, vv = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    S, P = q.shape[2], k.shape[2]
    allowed = torch.arange(P)[None, :] <= (P - S + torch.arange(S))[:, None]
    sc = (q @ kk.transpose(-1, -2)) / math.sqrt(model.D)
    ctx = torch.softmax(sc.masked_fill(~allowed, float('-inf')), -1) @ vv
    return model.finish(z, ctx), [k, v]
