"""Hand-written GPT-2 (target) and Llama (draft) decoder-only models with an
HF/Optimum-compatible forward signature:

    forward(input_ids, attention_mask, position_ids, past_key_values)
      -> logits, presents

input_ids/position_ids: int64 [batch, seq]; attention_mask: int64 [batch, past+seq]
(1 = real token, 0 = padding); past_key_values: list of (key, value) float32
[batch, num_kv_heads, past_seq, head_dim]. presents have the same layout with
past+seq positions. No dependency on the `transformers` package.
"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F

NEG = -1e9  # large negative added to masked scores before softmax (finite: no NaN for all-masked rows)


def build_mask(attention_mask, q_len, dtype):
    """Additive mask [batch, 1, q_len, kv_len]: causal relative to the past length
    (kv_len - q_len) and padding from attention_mask."""
    kv_len = attention_mask.shape[1]
    past_len = kv_len - q_len
    q_pos = torch.arange(q_len, device=attention_mask.device).unsqueeze(1) + past_len  # [q,1]
    k_pos = torch.arange(kv_len, device=attention_mask.device).unsqueeze(0)           # [1,k]
    causal = k_pos <= q_pos                                                            # [q,k]
    pad = attention_mask.unsqueeze(1).unsqueeze(2) > 0                                 # [b,1,1,k]
    allowed = causal.unsqueeze(0).unsqueeze(0) & pad                                   # [b,1,q,k]
    zero = torch.zeros((), dtype=dtype)
    neg = torch.full((), NEG, dtype=dtype)
    return torch.where(allowed, zero, neg)


def attend(q, k, v, mask, scale):
    """Multi-head: q,k,v [b,h,t,d], mask [b,1,q,k]. Grouped-query: q [b,kvh,n_rep,q,d] (query heads
    grouped by their KV head), k,v [b,kvh,1,k,d], mask [b,1,1,q,k] -- broadcasting MatMul, no repeat of k/v."""
    scores = torch.matmul(q * scale, k.transpose(-1, -2)) + mask
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def lm_head(x, w):
    """Tied output projection. Done on a 2-D view so the ONNX export is Gemm(transB=1) on the
    embedding initializer itself (a 3-D F.linear exports MatMul(Transpose(w)), which constant
    folding would turn into a second, transposed copy of the embedding)."""
    b, t, d = x.shape
    return F.linear(x.reshape(b * t, d), w).view(b, t, w.shape[0])


# ----------------------------------------------------------------------------- GPT-2

def gelu_new(x):
    # GPT-2's "gelu_new" (tanh approximation), written out so it exports at any opset
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class GPT2Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c['n_embd']
        self.n_head = c['n_head']
        self.ln_1 = nn.LayerNorm(d, eps=c['layer_norm_epsilon'])
        self.c_attn = nn.Linear(d, 3 * d)
        self.attn_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=c['layer_norm_epsilon'])
        self.c_fc = nn.Linear(d, c['n_inner'])
        self.mlp_proj = nn.Linear(c['n_inner'], d)

    def forward(self, x, mask, past):
        b, t, d = x.shape
        h = self.n_head
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q = q.view(b, t, h, d // h).transpose(1, 2)
        k = k.view(b, t, h, d // h).transpose(1, 2)
        v = v.view(b, t, h, d // h).transpose(1, 2)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        y = attend(q, k, v, mask, 1.0 / math.sqrt(d // h)).transpose(1, 2).reshape(b, t, d)
        x = x + self.attn_proj(y)
        x = x + self.mlp_proj(gelu_new(self.c_fc(self.ln_2(x))))
        return x, (k, v)


class GPT2LM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.wte = nn.Embedding(c['vocab_size'], c['n_embd'])
        self.wpe = nn.Embedding(c['n_positions'], c['n_embd'])
        self.h = nn.ModuleList([GPT2Block(c) for _ in range(c['n_layer'])])
        self.ln_f = nn.LayerNorm(c['n_embd'], eps=c['layer_norm_epsilon'])
        self.apply(self._init)
        for n, p in self.named_parameters():  # GPT-2 scaled init of residual projections
            if n.endswith('attn_proj.weight') or n.endswith('mlp_proj.weight'):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c['n_layer']))

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, input_ids, attention_mask, position_ids, past_key_values=None):
        x = self.wte(input_ids) + self.wpe(position_ids)
        mask = build_mask(attention_mask, input_ids.shape[1], x.dtype)
        presents = []
        for i, blk in enumerate(self.h):
            x, kv = blk(x, mask, None if past_key_values is None else past_key_values[i])
            presents.append(kv)
        logits = lm_head(self.ln_f(x), self.wte.weight)
        return logits, presents


# ----------------------------------------------------------------------------- Llama

class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class LlamaBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, hd = c['hidden_size'], c['head_dim']
        self.h, self.kvh, self.hd = c['num_attention_heads'], c['num_key_value_heads'], hd
        self.input_layernorm = RMSNorm(d, c['rms_norm_eps'])
        self.q_proj = nn.Linear(d, self.h * hd, bias=False)
        self.k_proj = nn.Linear(d, self.kvh * hd, bias=False)
        self.v_proj = nn.Linear(d, self.kvh * hd, bias=False)
        self.o_proj = nn.Linear(self.h * hd, d, bias=False)
        self.post_attention_layernorm = RMSNorm(d, c['rms_norm_eps'])
        self.gate_proj = nn.Linear(d, c['intermediate_size'], bias=False)
        self.up_proj = nn.Linear(d, c['intermediate_size'], bias=False)
        self.down_proj = nn.Linear(c['intermediate_size'], d, bias=False)

    def forward(self, x, mask, cos, sin, rot, past):
        b, t, _ = x.shape
        hx = self.input_layernorm(x)
        n_rep = self.h // self.kvh
        # query head j uses KV head j // n_rep (HF repeat_kv order): group q as [b, kvh, n_rep, t, hd]
        q = self.q_proj(hx).view(b, t, self.kvh, n_rep, self.hd).permute(0, 2, 3, 1, 4)
        k = self.k_proj(hx).view(b, t, self.kvh, self.hd).transpose(1, 2)
        v = self.v_proj(hx).view(b, t, self.kvh, self.hd).transpose(1, 2)
        q = q * cos.unsqueeze(1) + torch.matmul(q, rot) * sin.unsqueeze(1)
        k = k * cos + torch.matmul(k, rot) * sin
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        y = attend(q, k.unsqueeze(2), v.unsqueeze(2), mask, 1.0 / math.sqrt(self.hd))  # [b,kvh,n_rep,t,hd]
        y = y.permute(0, 3, 1, 2, 4).reshape(b, t, self.h * self.hd)
        x = x + self.o_proj(y)
        hx = self.post_attention_layernorm(x)
        x = x + self.down_proj(F.silu(self.gate_proj(hx)) * self.up_proj(hx))
        return x, (k, v)


class LlamaLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        hd = c['head_dim']
        self.embed_tokens = nn.Embedding(c['vocab_size'], c['hidden_size'])
        self.layers = nn.ModuleList([LlamaBlock(c) for _ in range(c['num_hidden_layers'])])
        self.norm = RMSNorm(c['hidden_size'], c['rms_norm_eps'])
        inv_freq = 1.0 / (c['rope_theta'] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        self.register_buffer('inv_freq', inv_freq, persistent=False)
        # rotate_half(x) == x @ rot  (rot has entries 0/+1/-1, so the product is exact)
        h2 = hd // 2
        rot = torch.zeros(hd, hd)
        rot[torch.arange(h2) + h2, torch.arange(h2)] = -1.0  # out[:h2] = -x[h2:]
        rot[torch.arange(h2), torch.arange(h2) + h2] = 1.0   # out[h2:] = x[:h2]
        self.register_buffer('rot', rot, persistent=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
        for n, p in self.named_parameters():
            if n.endswith('o_proj.weight') or n.endswith('down_proj.weight'):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c['num_hidden_layers']))

    def forward(self, input_ids, attention_mask, position_ids, past_key_values=None):
        x = self.embed_tokens(input_ids)
        mask = build_mask(attention_mask, input_ids.shape[1], x.dtype).unsqueeze(1)  # [b,1,1,q,k]
        freqs = position_ids.to(torch.float32).unsqueeze(-1) * self.inv_freq  # [b,t,hd/2]
        emb = torch.cat([freqs, freqs], dim=-1).unsqueeze(1)                  # [b,1,t,hd]
        cos, sin = emb.cos(), emb.sin()
        presents = []
        for i, blk in enumerate(self.layers):
            x, kv = blk(x, mask, cos, sin, self.rot, None if past_key_values is None else past_key_values[i])
            presents.append(kv)
        logits = lm_head(self.norm(x), self.embed_tokens.weight)
        return logits, presents


# ----------------------------------------------------------------------------- configs

def target_config(n_layer=8, n_embd=256, n_head=8, n_positions=256):
    return {
        'architectures': ['GPT2LMHeadModel'], 'model_type': 'gpt2',
        'vocab_size': 8192, 'n_positions': n_positions, 'n_ctx': n_positions,
        'n_embd': n_embd, 'n_layer': n_layer, 'n_head': n_head, 'n_inner': 4 * n_embd,
        'activation_function': 'gelu_new', 'resid_pdrop': 0.0, 'embd_pdrop': 0.0, 'attn_pdrop': 0.0,
        'layer_norm_epsilon': 1e-5, 'initializer_range': 0.02,
        'scale_attn_weights': True, 'scale_attn_by_inverse_layer_idx': False, 'reorder_and_upcast_attn': False,
        'summary_type': 'cls_index', 'summary_use_proj': True, 'summary_activation': None,
        'summary_proj_to_labels': True, 'summary_first_dropout': 0.1,
        'bos_token_id': 1, 'eos_token_id': 1, 'pad_token_id': 2,
        'tie_word_embeddings': True, 'use_cache': True, 'torch_dtype': 'float32',
    }


def draft_config(layers=2, hidden=48, heads=4, kv_heads=2, inter=128, max_pos=256):
    return {
        'architectures': ['LlamaForCausalLM'], 'model_type': 'llama',
        'vocab_size': 8192, 'hidden_size': hidden, 'intermediate_size': inter,
        'num_hidden_layers': layers, 'num_attention_heads': heads, 'num_key_value_heads': kv_heads,
        'head_dim': hidden // heads, 'hidden_act': 'silu', 'max_position_embeddings': max_pos,
        'rms_norm_eps': 1e-5, 'rope_theta': 10000.0, 'rope_scaling': None,
        'attention_bias': False, 'attention_dropout': 0.0, 'mlp_bias': False, 'pretraining_tp': 1,
        'initializer_range': 0.02, 'tie_word_embeddings': True,
        'bos_token_id': 1, 'eos_token_id': 1, 'pad_token_id': 2,
        'use_cache': True, 'torch_dtype': 'float32',
    }


def build(kind, cfg):
    return GPT2LM(cfg) if kind == 'target' else LlamaLM(cfg)
