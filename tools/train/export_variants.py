"""Tiny fixture model folder with the dtype and merged-decoder variants that Optimum /
transformers.js ship, for the tests of src/model (src/model/variants_test.ts).

Writes src/model/testdata/variants/:
    config.json                      Llama style (model.py's LlamaLM): 2 layers, hidden 32, 4 query heads,
                                     2 KV heads (GQA), head_dim 8, SwiGLU 64, vocab 512, 128 positions
    onnx/model.onnx                  fp32, torch.onnx.export with export.py's I/O names (opset 17)
    onnx/model_fp16.onnx             onnxconverter_common.float16.convert_float_to_float16, keep_io_types=False:
                                     float16 weights AND float16 past_key_values / present / logits, the
                                     form of Optimum's `--dtype fp16` exports (input_ids etc. stay int64);
                                     the RoPE angles (Cast(position_ids) .. Cos/Sin, inv_freq) stay float32
    onnx/model_quantized.onnx        onnxruntime.quantization.quantize_dynamic (QUInt8 weights, per tensor;
                                     QUInt8 activations: DynamicQuantizeLinear + MatMulInteger; the embedding
                                     Gather on uint8 + DequantizeLinear; the tied Gemm becomes MatMulInteger on
                                     a transposed uint8 copy), as transformers.js `q8`; float32 I/O
    onnx/decoder_model_merged.onnx   Optimum's merged layout: extra input `use_cache_branch` (bool [1]) and
                                     one `If` node; then-branch = the decoder with past (model.onnx's
                                     body), else-branch = a separate export without past inputs (Optimum's
                                     decoder_model.onnx); initializers deduplicated into the outer graph

Weights are random (seeded, torch.manual_seed(1234)), with larger-than-training init scales so the
logits spread over several units (not near-uniform) and attention is not flat.
Every file passes onnx.checker.check_model(full_check=True).

Two Pythons: the export needs torch (Debian /usr/bin/python3: python3-torch 1.13 + python3-onnx), the
variants need onnxruntime + onnxconverter-common (pyenv python3:
`python3 -m pip install onnxruntime onnx onnxconverter-common`). Run from the repo root:

    python3 tools/train/export_variants.py          # runs the torch stage with $TORCH_PYTHON
                                                    # (default /usr/bin/python3), then the variants
`--out DIR` writes elsewhere (e.g. to compare a rerun). Rerunnable: a rerun was byte-identical; the torch stage is deterministic for a given torch build, the converters for given
package versions (recorded: torch 1.13.0a0, onnx 1.12 (export) / 1.23.2, onnxruntime 1.32.0,
onnxconverter-common 1.16.0).
"""
import argparse, json, os, subprocess, sys, tempfile

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
OUT = os.path.join(root, 'src', 'model', 'testdata', 'variants')

CFG = {
    'architectures': ['LlamaForCausalLM'], 'model_type': 'llama',
    'vocab_size': 512, 'hidden_size': 32, 'intermediate_size': 64,
    'num_hidden_layers': 2, 'num_attention_heads': 4, 'num_key_value_heads': 2,
    'head_dim': 8, 'hidden_act': 'silu', 'max_position_embeddings': 128,
    'rms_norm_eps': 1e-5, 'rope_theta': 10000.0, 'rope_scaling': None,
    'attention_bias': False, 'attention_dropout': 0.0, 'mlp_bias': False, 'pretraining_tp': 1,
    'initializer_range': 0.02, 'tie_word_embeddings': True,
    'bos_token_id': 1, 'eos_token_id': 1, 'pad_token_id': 2,
    'use_cache': True, 'torch_dtype': 'float32', 'transformers_version': '4.46.0',
}
N_LAYER, KVH, HD = CFG['num_hidden_layers'], CFG['num_key_value_heads'], CFG['head_dim']


# ----------------------------------------------------------------------------- stage 1: torch

def stage_export(tmp):
    import torch
    import onnx
    from onnx import helper, numpy_helper
    import numpy as np
    sys.path.insert(0, here)
    from model import build
    torch.set_num_threads(1)
    torch.manual_seed(1234)
    model = build('draft', CFG)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('embed_tokens.weight'):
                p.normal_(0.0, 0.5)  # tied: logits = norm(x) . E^T spread ~ sqrt(32) * 0.5
            elif p.dim() == 2:
                p.normal_(0.0, 1.0 / p.shape[1] ** 0.5)
            else:
                p.uniform_(0.8, 1.2)  # RMSNorm gains
    model.eval()

    class WithPast(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, position_ids, *past):
            pkv = [(past[2 * i], past[2 * i + 1]) for i in range(N_LAYER)]
            logits, presents = self.m(input_ids, attention_mask, position_ids, pkv)
            return tuple([logits] + [t for kv in presents for t in kv])

    class NoPast(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, position_ids):
            logits, presents = self.m(input_ids, attention_mask, position_ids, None)
            return tuple([logits] + [t for kv in presents for t in kv])

    B, S, P = 2, 3, 5
    ids = torch.randint(3, CFG['vocab_size'], (B, S))
    pos = torch.arange(P, P + S).unsqueeze(0).expand(B, S).contiguous()
    past = [torch.randn(B, KVH, P, HD) for _ in range(2 * N_LAYER)]
    base_in = ['input_ids', 'attention_mask', 'position_ids']
    dyn = {'input_ids': {0: 'batch_size', 1: 'sequence_length'},
           'attention_mask': {0: 'batch_size', 1: 'total_sequence_length'},
           'position_ids': {0: 'batch_size', 1: 'sequence_length'},
           'logits': {0: 'batch_size', 1: 'sequence_length'}}
    past_names, present_names = [], []
    for i in range(N_LAYER):
        for kv in ('key', 'value'):
            past_names.append(f'past_key_values.{i}.{kv}')
            present_names.append(f'present.{i}.{kv}')
            dyn[past_names[-1]] = {0: 'batch_size', 2: 'past_sequence_length'}
            dyn[present_names[-1]] = {0: 'batch_size', 2: 'total_sequence_length'}
    os.makedirs(os.path.join(OUT, 'onnx'), exist_ok=True)
    with_past = os.path.join(OUT, 'onnx', 'model.onnx')
    no_past = os.path.join(tmp, 'decoder_model.onnx')
    with torch.no_grad():
        torch.onnx.export(WithPast(model), (ids, torch.ones(B, P + S, dtype=torch.long), pos, *past), with_past,
                          input_names=base_in + past_names, output_names=['logits'] + present_names,
                          dynamic_axes=dyn, opset_version=17, do_constant_folding=True)
        dyn_np = {k: v for k, v in dyn.items() if not k.startswith('past_')}
        torch.onnx.export(NoPast(model), (ids, torch.ones(B, S, dtype=torch.long), pos - P), no_past,
                          input_names=base_in, output_names=['logits'] + present_names,
                          dynamic_axes=dyn_np, opset_version=17, do_constant_folding=True)
    # tied lm_head: Gemm(transB=1) on the embedding itself (as export.py does), stored once
    for path in (with_past, no_past):
        m = onnx.load(path)
        inits = {i.name: i for i in m.graph.initializer}
        emb_name = 'm.embed_tokens.weight'
        emb = numpy_helper.to_array(inits[emb_name])
        swapped = 0
        for idx, node in enumerate(list(m.graph.node)):
            if node.op_type == 'MatMul' and node.input[1] in inits and \
                    list(inits[node.input[1]].dims) == [emb.shape[1], emb.shape[0]]:
                assert np.array_equal(numpy_helper.to_array(inits[node.input[1]]), emb.T)
                gemm = helper.make_node('Gemm', [node.input[0], emb_name], list(node.output),
                                        name=node.name + '_tied_gemm', transB=1)
                m.graph.node.remove(node)
                m.graph.node.insert(idx, gemm)
                m.graph.initializer.remove(inits[node.input[1]])
                swapped += 1
        assert swapped == 1, swapped
        onnx.checker.check_model(m, full_check=True)
        onnx.save(m, path)
    with open(os.path.join(OUT, 'config.json'), 'w') as f:
        json.dump(CFG, f, indent=2)
        f.write('\n')
    print('torch stage: wrote', with_past, 'and', no_past)


# ----------------------------------------------------------------------------- stage 2: variants

def rename_subgraph(graph, prefix, outer_names):
    """Prefix every value produced inside `graph` (node outputs) so the branch is SSA-unique
    against the outer graph and the other branch; references to outer-scope values stay."""
    produced = {o for n in graph.node for o in n.output if o}
    mapping = {name: prefix + name for name in produced}
    for n in graph.node:
        n.name = prefix + n.name
        for i, x in enumerate(n.input):
            if x in mapping:
                n.input[i] = mapping[x]
        for i, x in enumerate(n.output):
            if x in mapping:
                n.output[i] = mapping[x]
    for o in graph.output:
        o.name = mapping[o.name]
    for vi in graph.value_info:
        if vi.name in mapping:
            vi.name = mapping[vi.name]
    assert not (set(mapping.values()) & outer_names)


def make_merged(with_past_path, no_past_path, out_path):
    import hashlib
    import onnx
    from onnx import helper, TensorProto
    wp, np_ = onnx.load(with_past_path), onnx.load(no_past_path)
    # Deduplicate initializers by content (Optimum's merge does the same): one outer-scope copy.
    outer_inits, by_hash = [], {}

    def take(graph):
        rename = {}
        for init in graph.initializer:
            key = (init.data_type, tuple(init.dims), hashlib.sha256(init.raw_data or init.SerializeToString()).hexdigest())
            if key not in by_hash:
                new = onnx.TensorProto()
                new.CopyFrom(init)
                new.name = init.name if all(i.name != init.name for i in outer_inits) else f'{init.name}_{len(outer_inits)}'
                outer_inits.append(new)
                by_hash[key] = new.name
            rename[init.name] = by_hash[key]
        for n in graph.node:
            for i, x in enumerate(n.input):
                if x in rename:
                    n.input[i] = rename[x]
        del graph.initializer[:]

    take(wp.graph)
    take(np_.graph)
    outer_names = {i.name for i in wp.graph.input} | {i.name for i in outer_inits} | {'use_cache_branch'} | \
        {o.name for o in wp.graph.output}
    then_g = onnx.GraphProto()
    then_g.CopyFrom(wp.graph)
    del then_g.input[:]
    then_g.name = 'with_past'
    rename_subgraph(then_g, 'with_past/', outer_names)
    else_g = onnx.GraphProto()
    else_g.CopyFrom(np_.graph)
    del else_g.input[:]
    else_g.name = 'no_past'
    rename_subgraph(else_g, 'no_past/', outer_names)
    # branch outputs: the same types; shapes with branch-neutral dim names (If infers the outer ones)
    for g in (then_g, else_g):
        for o, outer in zip(g.output, wp.graph.output):
            o.type.CopyFrom(outer.type)
        del g.value_info[:]
    use_cache = helper.make_tensor_value_info('use_cache_branch', TensorProto.BOOL, [1])
    node = helper.make_node('If', ['use_cache_branch'], [o.name for o in wp.graph.output],
                            name='optimum::if', then_branch=then_g, else_branch=else_g)
    graph = helper.make_graph([node], 'merged_decoder', list(wp.graph.input) + [use_cache],
                              list(wp.graph.output), initializer=outer_inits)
    merged = helper.make_model(graph, opset_imports=wp.opset_import, producer_name='export_variants.py')
    merged.ir_version = wp.ir_version
    onnx.checker.check_model(merged, full_check=True)
    onnx.save(merged, out_path)


def rope_nodes(m):
    """The RoPE angle nodes (Cast(position_ids) -> ... -> Cos, Sin): kept float32 in the fp16 model, as
    fp16 exports of HF Llama compute the rotary angles in float32 (position * inv_freq in float16
    would be off by up to 0.06 rad at position 128)."""
    consumers = {}
    for n in m.graph.node:
        for x in n.input:
            consumers.setdefault(x, []).append(n)
    todo = [n for n in m.graph.node if n.op_type == 'Cast' and n.input[0] == 'position_ids']
    assert len(todo) == 1
    names = []
    while todo:
        n = todo.pop()
        if n.name in names:
            continue
        names.append(n.name)
        if n.op_type not in ('Cos', 'Sin'):
            for o in n.output:
                todo += consumers.get(o, [])
    assert sorted(n.split('/')[-1].rstrip('_0123456789') for n in names) == \
        ['Cast', 'Concat', 'Cos', 'Mul', 'Sin', 'Unsqueeze', 'Unsqueeze'], names
    return names


def restore_fp32_constants(m, m32):
    """A kept-float32 node that reads a Constant gets Cast(to=FLOAT) of the constant converted to
    float16 (RoPE's inv_freq: relative error 2^-11, 0.03 rad at position 128). Put the original
    float32 constant back in place of the cast."""
    import onnx
    from onnx import TensorProto
    const32 = {n.name: n for n in m32.graph.node if n.op_type == 'Constant'}
    producer = {o: n for n in m.graph.node for o in n.output}
    restored = 0
    for n in list(m.graph.node):
        p = producer.get(n.input[0]) if n.op_type == 'Cast' else None
        if p is None or p.op_type != 'Constant' or p.name not in const32 or \
                next(a.i for a in n.attribute if a.name == 'to') != TensorProto.FLOAT:
            continue
        c = onnx.NodeProto()
        c.CopyFrom(const32[p.name])
        c.name, c.output[0] = n.name + '_fp32_constant', n.output[0]
        m.graph.node.insert(list(m.graph.node).index(n), c)
        m.graph.node.remove(n)
        restored += 1
    used = {x for c in m.graph.node for x in c.input}
    for n in list(m.graph.node):
        if n.op_type == 'Constant' and n.output[0] not in used:
            m.graph.node.remove(n)
    assert restored == 1, restored  # inv_freq


def drop_cast_round_trips(m):
    """The converter casts a kept-float32 node's output to float16 and back to float32 when the next
    node is kept float32 too (Mul -> Concat, Unsqueeze -> Cos/Sin): that would round the RoPE angles to
    float16 after all. Rewire Cast(to=FLOAT) of Cast(to=FLOAT16) of a float32 value to that value."""
    import onnx
    from onnx import TensorProto
    inferred = onnx.shape_inference.infer_shapes(m)
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    to = lambda n: next(a.i for a in n.attribute if a.name == 'to')
    producer = {o: n for n in m.graph.node for o in n.output}
    outputs = {o.name for o in m.graph.output}
    removed = 0
    for n in list(m.graph.node):
        p = producer.get(n.input[0]) if n.op_type == 'Cast' else None
        if p is None or p.op_type != 'Cast' or to(n) != TensorProto.FLOAT or to(p) != TensorProto.FLOAT16 or \
                types.get(p.input[0]) != TensorProto.FLOAT or n.output[0] in outputs:
            continue
        for c in m.graph.node:
            for i, x in enumerate(c.input):
                if x == n.output[0]:
                    c.input[i] = p.input[0]
        m.graph.node.remove(n)
        removed += 1
    used = {x for c in m.graph.node for x in c.input} | outputs
    for n in list(m.graph.node):
        if n.op_type == 'Cast' and n.output[0] not in used:
            m.graph.node.remove(n)
    kept = {o for n in m.graph.node for o in n.output} | {i.name for i in m.graph.input}
    keep_vi = [v for v in m.graph.value_info if v.name in kept]
    del m.graph.value_info[:]
    m.graph.value_info.extend(keep_vi)
    assert removed == 4, removed  # Mul -> Concat (2 inputs), Unsqueeze -> Cos, Unsqueeze -> Sin


def stage_variants(tmp):
    import onnx
    from onnxconverter_common import float16
    from onnxruntime.quantization import quantize_dynamic, QuantType
    d = os.path.join(OUT, 'onnx')
    fp32 = os.path.join(d, 'model.onnx')
    # fp16: float16 weights and float16 float I/O (Optimum --dtype fp16 form)
    m32 = onnx.load(fp32)
    m16 = float16.convert_float_to_float16(m32, keep_io_types=False, node_block_list=rope_nodes(m32))
    drop_cast_round_trips(m16)
    restore_fp32_constants(m16, m32)
    onnx.checker.check_model(m16, full_check=True)
    onnx.save(m16, os.path.join(d, 'model_fp16.onnx'))
    # q8: dynamic quantisation of the MatMul / Gather weights to uint8 (per tensor), activations quantised
    # at run time (DynamicQuantizeLinear, uint8). QUInt8 weights: on this fixture QInt8 weights gave a larger
    # error on onnxruntime's native x86 kernels (u8s8 int16 saturation: max |dlogit| 0.80 vs 0.52)
    q8 = os.path.join(d, 'model_quantized.onnx')
    quantize_dynamic(fp32, q8, weight_type=QuantType.QUInt8, per_channel=False, reduce_range=False,
                     extra_options={'MatMulConstBOnly': True})
    onnx.checker.check_model(onnx.load(q8), full_check=True)
    make_merged(fp32, os.path.join(tmp, 'decoder_model.onnx'), os.path.join(d, 'decoder_model_merged.onnx'))
    for name in sorted(os.listdir(d)):
        m = onnx.load(os.path.join(d, name))
        onnx.checker.check_model(m, full_check=True)
        types = {TensorName: onnx.TensorProto.DataType.Name(t) for TensorName, t in
                 [(v.name, v.type.tensor_type.elem_type) for v in list(m.graph.input) + list(m.graph.output)]}
        ops = sorted({n.op_type for n in m.graph.node})
        inits = sorted({onnx.TensorProto.DataType.Name(i.data_type) for i in m.graph.initializer})
        print(f'{name}: {os.path.getsize(os.path.join(d, name))} bytes; checker OK; ops {ops}; initializers {inits};',
              f'past {types.get("past_key_values.0.key")}, present {types.get("present.0.key")},',
              f'logits {types["logits"]}, use_cache_branch {types.get("use_cache_branch")}')


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('stage', nargs='?', choices=['all', 'export', 'variants'], default='all')
    ap.add_argument('--tmp', default=None, help='folder for the intermediate no-past export')
    ap.add_argument('--out', default=OUT, help='output folder (default src/model/testdata/variants)')
    args = ap.parse_args()
    OUT = os.path.abspath(args.out)
    if args.stage == 'export':
        stage_export(args.tmp)
    elif args.stage == 'variants':
        stage_variants(args.tmp)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            torch_python = os.environ.get('TORCH_PYTHON', '/usr/bin/python3')
            subprocess.run([torch_python, os.path.abspath(__file__), 'export', '--tmp', tmp, '--out', OUT], check=True)
            stage_variants(tmp)
