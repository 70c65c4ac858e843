"""Draft for SmolLM2-135M-Instruct: tools/train/model.py's Llama (RoPE, GQA, SwiGLU, RMSNorm) over the
target's full 49,152-token vocabulary, with a reduced vocabulary inside the graph:

  in_map  [V] int32: token id -> row of embed_tokens (K head rows + 1 shared row K for all other ids)
  embed_tokens [K+1, d]: input embedding, tied with the output head (row K = "other")
  head:  Gemm(x, embed_tokens, transB=1) -> [b*t, K+1] -> first K columns
  logits = ScatterElements(ConstantOfShape(-inf) [b*t, V], head_ids, head logits) -> [b, t, V]:
  exactly -inf outside the head, so the draft's q is exactly 0 there after softmax (every verifier
  stays exact). (A Gather of the V outputs through a map was 0.4 ms/step in onnxruntime: per-element.)
"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from model import LlamaLM, build_mask  # noqa: E402

V_FULL = 49152


def smol_draft_config(layers=2, hidden=256, heads=4, kv_heads=2, head_dim=64, inter=512, head_k=6144,
                      rope_theta=100000.0, max_pos=2048):
    return {
        'architectures': ['LlamaForCausalLM'], 'model_type': 'llama',
        'vocab_size': V_FULL, 'hidden_size': hidden, 'intermediate_size': inter,
        'num_hidden_layers': layers, 'num_attention_heads': heads, 'num_key_value_heads': kv_heads,
        'head_dim': head_dim, 'hidden_act': 'silu', 'max_position_embeddings': max_pos,
        'rms_norm_eps': 1e-5, 'rope_theta': rope_theta, 'rope_scaling': None,
        'attention_bias': False, 'attention_dropout': 0.0, 'mlp_bias': False, 'pretraining_tp': 1,
        'initializer_range': 0.02, 'tie_word_embeddings': True,
        'bos_token_id': 1, 'eos_token_id': 2, 'pad_token_id': 2,
        'use_cache': True, 'torch_dtype': 'float32',
        # not a transformers key (ignored there): the ONNX graph scatters a K-token head to the vocabulary
        'spectr_head_tokens': head_k,
    }


class SmolDraft(LlamaLM):
    def __init__(self, c, head_ids=None):
        super().__init__(c)
        K, d = c['spectr_head_tokens'], c['hidden_size']
        self.embed_tokens = nn.Embedding(K + 1, d)
        nn.init.normal_(self.embed_tokens.weight, 0.0, 0.02)
        if head_ids is None:
            head_ids = torch.arange(K)
        head_ids = torch.as_tensor(head_ids, dtype=torch.long)
        assert head_ids.numel() == K and head_ids.unique().numel() == K
        in_map = torch.full((V_FULL,), K, dtype=torch.long)
        in_map[head_ids] = torch.arange(K)
        self.register_buffer('head_ids', head_ids.clone())
        self.register_buffer('in_map', in_map.to(torch.int32))  # int32: half the bytes in the ONNX file
        self.register_buffer('zero_bias', torch.zeros(K + 1), persistent=False)

    def hidden(self, input_ids, attention_mask, position_ids, past_key_values=None):
        x = self.embed_tokens(self.in_map[input_ids].long())
        mask = build_mask(attention_mask, input_ids.shape[1], x.dtype).unsqueeze(1)
        freqs = position_ids.to(torch.float32).unsqueeze(-1) * self.inv_freq
        emb = torch.cat([freqs, freqs], dim=-1).unsqueeze(1)
        cos, sin = emb.cos(), emb.sin()
        presents = []
        for i, blk in enumerate(self.layers):
            x, kv = blk(x, mask, cos, sin, self.rot, None if past_key_values is None else past_key_values[i])
            presents.append(kv)
        return self.norm(x), presents

    def head_logits(self, h):
        """[..., d] -> [..., K] (the K head columns only, for training)."""
        K = self.c['spectr_head_tokens']
        return F.linear(h, self.embed_tokens.weight[:K])

    def forward(self, input_ids, attention_mask, position_ids, past_key_values=None):
        h, presents = self.hidden(input_ids, attention_mask, position_ids, past_key_values)
        b, t, d = h.shape
        K = self.c['spectr_head_tokens']
        # a zero bias makes torch export addmm -> Gemm(transB=1) on the embedding initializer itself (without
        # it: MatMul(x, W^T) and constant folding would store a second, transposed copy of the embedding)
        lk = F.linear(h.reshape(b * t, d), self.embed_tokens.weight, self.zero_bias)[:, :K]  # [b*t, K]
        full = torch.full((b * t, V_FULL), float('-inf'), dtype=lk.dtype)           # ConstantOfShape(-inf)
        logits = full.scatter(1, self.head_ids.unsqueeze(0).expand(b * t, K), lk)   # ScatterElements
        return logits.view(b, t, V_FULL), presents
