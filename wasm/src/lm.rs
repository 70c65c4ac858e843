//! The arithmetic of a transformer forward pass, for the `kernel` model backend (a model run
//! without onnxruntime, `src/backend/kernel/kernel_session.ts`): linear layers, layer / RMS norms, the
//! tanh-GELU and SiLU-gate activations, and masked multi-head attention over a KV cache.
//!
//! Everything is f32 row-major. A linear layer's weight is `[in, out]` (y = x · W, what an ONNX
//! `MatMul` holds); [`linear_t`] takes `[out, in]` (a tied embedding used as the output head).
//! The JS side validates shapes and lays out the buffers; these functions assume them.

use crate::simd::exp_f32;

/// [`linear`] takes the rows of `x` in groups of this many; for each group it reads `w` once, front
/// to back, two rows of it at a time, and updates every output row of the group from them. A
/// matrix–vector product is bound by reading `w`: a 4-row × 8-column register-block order, which
/// reads each row of `w` in 32-byte pieces, was 2.4× slower per decode step on a 135M model whose
/// weights do not fit in cache (135 → 57 ms). Groups of 16 were no faster (≈ 30 GFLOP/s either way
/// once a group has ≥ 5 rows: compute-bound without fused multiply-add).
const STREAM_ROWS: usize = 8;

/// `out[m×n] = x[m×k] · w[k×n] (+ bias[n])`.
pub fn linear(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    assert!(x.len() >= m * k && w.len() >= k * n && out.len() >= m * n);
    for r in 0..m {
        let o = &mut out[r * n..(r + 1) * n];
        match bias {
            Some(b) => o.copy_from_slice(&b[..n]),
            None => o.fill(0.0),
        }
    }
    // rows in groups of STREAM_ROWS, each group one contiguous pass over `w`
    let mut r = 0;
    while r < m {
        let rows = (m - r).min(STREAM_ROWS);
        let (xs, os) = (&x[r * k..(r + rows) * k], &mut out[r * n..(r + rows) * n]);
        match rows {
            1 => imp::stream::<1>(xs, k, w, n, os),
            2 => imp::stream::<2>(xs, k, w, n, os),
            3 => imp::stream::<3>(xs, k, w, n, os),
            4 => imp::stream::<4>(xs, k, w, n, os),
            5 => imp::stream::<5>(xs, k, w, n, os),
            6 => imp::stream::<6>(xs, k, w, n, os),
            7 => imp::stream::<7>(xs, k, w, n, os),
            _ => imp::stream::<8>(xs, k, w, n, os),
        }
        r += rows;
    }
}

/// `out[m×n] = x[m×k] · wᵀ` for `w[n×k]` (each output is a dot product with a row of `w`).
///
/// Rows of `x` go in groups of up to [`STREAM_ROWS`], each group one pass over `w`; each row of
/// `w` is loaded once per group and multiplied into every row of it, with several rows of `w` at
/// once when the group is small (independent accumulators: a single running sum is bound by the
/// latency of an add, not by memory).
pub fn linear_t(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: &mut [f32]) {
    assert!(x.len() >= m * k && w.len() >= n * k && out.len() >= m * n);
    let mut r = 0;
    while r < m {
        let rows = (m - r).min(STREAM_ROWS);
        let xs = &x[r * k..(r + rows) * k];
        let os = &mut out[r * n..(r + rows) * n];
        match rows {
            1 => imp::dots::<1, 4>(xs, k, w, n, os),
            2 => imp::dots::<2, 2>(xs, k, w, n, os),
            3 => imp::dots::<3, 2>(xs, k, w, n, os),
            4 => imp::dots::<4, 2>(xs, k, w, n, os),
            5 => imp::dots::<5, 2>(xs, k, w, n, os),
            6 => imp::dots::<6, 2>(xs, k, w, n, os),
            7 => imp::dots::<7, 1>(xs, k, w, n, os),
            _ => imp::dots::<8, 1>(xs, k, w, n, os),
        }
        r += rows;
    }
}

/// Weights per quantization block of [`linear_q8`] (MatMulNBits' `block_size`).
pub const Q8_BLOCK: usize = 32;

/// Quantizes each block of [`Q8_BLOCK`] values of the rows of `x[m×k]` to integers in [−127, 127]
/// (`xq`, as i16 for the SIMD dot product) with a scale per block (`xs`: max |x| / 127) and keeps
/// each block's exact float sum (`xsum`, for the weights' block minimums). `k` is a multiple of
/// [`Q8_BLOCK`].
pub fn quantize_rows(x: &[f32], m: usize, k: usize, xq: &mut [i16], xs: &mut [f32], xsum: &mut [f32]) {
    let blocks = k / Q8_BLOCK;
    assert!(k % Q8_BLOCK == 0 && x.len() >= m * k && xq.len() >= m * k && xs.len() >= m * blocks);
    assert!(xsum.len() >= m * blocks);
    for b in 0..m * blocks {
        let (scale, sum) = imp::quantize_block(&x[b * Q8_BLOCK..(b + 1) * Q8_BLOCK], &mut xq[b * Q8_BLOCK..(b + 1) * Q8_BLOCK]);
        xs[b] = scale;
        xsum[b] = sum;
    }
}

/// `out[m×n] = x · W (+ bias)` for 8-bit block-quantized weights stored output-major: `codes[n×k]`
/// (signed, the stored unsigned code − 128), `scales[n × k/32]`, and optional block minimums
/// `mins[n × k/32]` (W[i, j] = scales[j, b]·codes[j, i] + mins[j, b], b = i / 32). `x` comes as
/// [`quantize_rows`] made it: `y[r, j] = Σ_b scales[j,b]·xs[r,b]·Σ_i codes·xq + Σ_b mins[j,b]·xsum[r,b]`,
/// integer dot products within a block (what onnxruntime's MatMulNBits does at accuracy level 4).
#[allow(clippy::too_many_arguments)]
pub fn linear_q8(
    xq: &[i16],
    xs: &[f32],
    xsum: &[f32],
    m: usize,
    k: usize,
    codes: &[i8],
    scales: &[f32],
    mins: Option<&[f32]>,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let blocks = k / Q8_BLOCK;
    assert!(k % Q8_BLOCK == 0 && xq.len() >= m * k && xs.len() >= m * blocks && xsum.len() >= m * blocks);
    assert!(codes.len() >= n * k && scales.len() >= n * blocks && out.len() >= m * n);
    let mut r = 0;
    while r < m {
        let rows = (m - r).min(STREAM_ROWS);
        let (xq_g, xs_g, xsum_g) = (&xq[r * k..(r + rows) * k], &xs[r * blocks..], &xsum[r * blocks..]);
        let out_g = &mut out[r * n..(r + rows) * n];
        match rows {
            1 => imp::q8_rows::<1>(xq_g, xs_g, k, codes, scales, n, out_g),
            2 => imp::q8_rows::<2>(xq_g, xs_g, k, codes, scales, n, out_g),
            3 => imp::q8_rows::<3>(xq_g, xs_g, k, codes, scales, n, out_g),
            4 => imp::q8_rows::<4>(xq_g, xs_g, k, codes, scales, n, out_g),
            5 => imp::q8_rows::<5>(xq_g, xs_g, k, codes, scales, n, out_g),
            6 => imp::q8_rows::<6>(xq_g, xs_g, k, codes, scales, n, out_g),
            7 => imp::q8_rows::<7>(xq_g, xs_g, k, codes, scales, n, out_g),
            _ => imp::q8_rows::<8>(xq_g, xs_g, k, codes, scales, n, out_g),
        }
        for i in 0..rows {
            let o = &mut out_g[i * n..(i + 1) * n];
            if let Some(mn) = mins {
                let srow = &xsum_g[i * blocks..(i + 1) * blocks];
                for j in 0..n {
                    o[j] += imp::dot(srow, &mn[j * blocks..(j + 1) * blocks]);
                }
            }
            if let Some(b) = bias {
                for j in 0..n {
                    o[j] += b[j];
                }
            }
        }
        r += rows;
    }
}

/// Layer normalisation of each row of `x[m×n]`: `(x − mean) / √(var + eps) · w + b`.
pub fn layer_norm(x: &[f32], m: usize, n: usize, w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    for r in 0..m {
        let row = &x[r * n..(r + 1) * n];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = row.iter().map(|&v| (v as f64 - mean) * (v as f64 - mean)).sum::<f64>() / n as f64;
        let inv = 1.0 / libm_sqrt(var + eps as f64);
        let o = &mut out[r * n..(r + 1) * n];
        for i in 0..n {
            o[i] = ((row[i] as f64 - mean) * inv) as f32 * w[i] + b[i];
        }
    }
}

/// RMS normalisation of each row of `x[m×n]`: `x / √(mean(x²) + eps) · w`.
pub fn rms_norm(x: &[f32], m: usize, n: usize, w: &[f32], eps: f32, out: &mut [f32]) {
    for r in 0..m {
        let row = &x[r * n..(r + 1) * n];
        let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / n as f64;
        let inv = 1.0 / libm_sqrt(ms + eps as f64);
        let o = &mut out[r * n..(r + 1) * n];
        for i in 0..n {
            o[i] = (row[i] as f64 * inv) as f32 * w[i];
        }
    }
}

/// √x by Newton's method from the f64 bit pattern (no libm in `no_std`); exact to the last bit
/// or one off, for x > 0.
fn libm_sqrt(x: f64) -> f64 {
    if !(x > 0.0) {
        return if x == 0.0 { 0.0 } else { f64::NAN };
    }
    let mut y = f64::from_bits((x.to_bits() >> 1) + (1023u64 << 51));
    for _ in 0..6 {
        y = 0.5 * (y + x / y);
    }
    y
}

/// tanh(y) from e^(−2|y|) (only arguments ≤ 0 reach [`exp_f32`]).
fn tanh(y: f32) -> f32 {
    let e = exp_f32(-2.0 * if y < 0.0 { -y } else { y });
    let t = (1.0 - e) / (1.0 + e);
    if y < 0.0 {
        -t
    } else {
        t
    }
}

/// The logistic function 1 / (1 + e^(−g)), evaluated so that [`exp_f32`] sees an argument ≤ 0.
fn sigmoid(g: f32) -> f32 {
    if g >= 0.0 {
        1.0 / (1.0 + exp_f32(-g))
    } else {
        let e = exp_f32(g);
        e / (1.0 + e)
    }
}

/// In place: GPT-2's tanh GELU, `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
pub fn gelu_tanh(x: &mut [f32]) {
    const C: f32 = 0.797_884_6; // √(2/π)
    for v in x.iter_mut() {
        let a = *v;
        *v = 0.5 * a * (1.0 + tanh(C * (a + 0.044715 * a * a * a)));
    }
}

/// In place: Llama's gated SiLU, `gate ← gate · σ(gate) · up`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let n4 = imp::silu_mul4(&mut gate[..n], &up[..n]);
    for i in n4..n {
        gate[i] = gate[i] * sigmoid(gate[i]) * up[i];
    }
}

/// The shape of one attention call.
#[derive(Clone, Copy)]
pub struct AttentionShape {
    /// Query positions.
    pub t: usize,
    /// Key positions (cache + new).
    pub total: usize,
    /// Query heads.
    pub heads: usize,
    /// Key / value heads (grouped-query attention: `heads` is a multiple).
    pub kv_heads: usize,
    /// Dimensions per head.
    pub head_dim: usize,
}

/// Masked softmax attention of one row: `q[t × heads·hd]` against `k`, `v` `[kv_heads × total ×
/// hd]`; `mask[t × total]` (non-zero = visible), scores scaled by `scale`; `scores` is scratch of
/// `total`; `out[t × heads·hd]`. A query that sees no key gets zeros.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: &[u8],
    s: AttentionShape,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let (hd, width) = (s.head_dim, s.heads * s.head_dim);
    let group = s.heads / s.kv_heads;
    assert!(q.len() >= s.t * width && out.len() >= s.t * width && mask.len() >= s.t * s.total);
    assert!(k.len() >= s.kv_heads * s.total * hd && v.len() >= s.kv_heads * s.total * hd);
    assert!(scores.len() >= s.total);
    for i in 0..s.t {
        let visible = &mask[i * s.total..(i + 1) * s.total];
        for h in 0..s.heads {
            let qh = &q[i * width + h * hd..i * width + (h + 1) * hd];
            let base = (h / group) * s.total * hd;
            let mut max = f32::NEG_INFINITY;
            for j in 0..s.total {
                if visible[j] != 0 {
                    let d = imp::dot(qh, &k[base + j * hd..base + (j + 1) * hd]) * scale;
                    scores[j] = d;
                    if d > max {
                        max = d;
                    }
                }
            }
            let o = &mut out[i * width + h * hd..i * width + (h + 1) * hd];
            o.fill(0.0);
            if max == f32::NEG_INFINITY {
                continue;
            }
            let mut sum = 0.0f32;
            for j in 0..s.total {
                if visible[j] != 0 {
                    let e = exp_f32(scores[j] - max);
                    sum += e;
                    imp::axpy(o, e, &v[base + j * hd..base + (j + 1) * hd]);
                }
            }
            let inv = 1.0 / sum;
            for x in o.iter_mut() {
                *x *= inv;
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    //! simd128 inner loops. `unsafe` here is raw loads and stores at offsets the asserts bound:
    //! `stream` reads `x[R·k]`, `w[k·n]` and updates `out[R·n]`; `dot` / `axpy` stay within
    //! equal-length slices.
    use core::arch::wasm32::*;

    /// `out[R×n] += x[R×k] · w[k×n]`, reading `w` once in order: rows kk and kk + 1 of `w`
    /// update every output row, 4 columns at a time.
    #[inline(always)]
    pub fn stream<const R: usize>(x: &[f32], k: usize, w: &[f32], n: usize, out: &mut [f32]) {
        assert!(x.len() >= R * k && w.len() >= k * n && out.len() >= R * n);
        let (xp, wp, op) = (x.as_ptr(), w.as_ptr(), out.as_mut_ptr());
        let n4 = n & !3;
        let mut kk = 0;
        // SAFETY: rows kk, kk + 1 < k of w, columns j + 4 ≤ n4 ≤ n, rows r < R of x and out: all
        // within the lengths asserted above.
        unsafe {
            while kk + 2 <= k {
                let mut a = [f32x4_splat(0.0); R];
                let mut b = [f32x4_splat(0.0); R];
                for r in 0..R {
                    a[r] = f32x4_splat(*xp.add(r * k + kk));
                    b[r] = f32x4_splat(*xp.add(r * k + kk + 1));
                }
                let (w0, w1) = (wp.add(kk * n), wp.add((kk + 1) * n));
                let mut j = 0;
                while j < n4 {
                    let v0 = v128_load(w0.add(j) as *const v128);
                    let v1 = v128_load(w1.add(j) as *const v128);
                    for r in 0..R {
                        let o = op.add(r * n + j) as *mut v128;
                        v128_store(o, f32x4_add(v128_load(o), f32x4_add(f32x4_mul(a[r], v0), f32x4_mul(b[r], v1))));
                    }
                    j += 4;
                }
                for j in n4..n {
                    for r in 0..R {
                        *op.add(r * n + j) += *xp.add(r * k + kk) * *w0.add(j) + *xp.add(r * k + kk + 1) * *w1.add(j);
                    }
                }
                kk += 2;
            }
            if kk < k {
                let w0 = wp.add(kk * n);
                for r in 0..R {
                    let a = *xp.add(r * k + kk);
                    for j in 0..n {
                        *op.add(r * n + j) += a * *w0.add(j);
                    }
                }
            }
        }
    }

    /// `out[r, j] = x[r] · w[j]` for R rows of `x` and all `n` rows of `w`, J rows of `w` at a
    /// time (the last `n mod J` one by one).
    #[inline(always)]
    pub fn dots<const R: usize, const J: usize>(x: &[f32], k: usize, w: &[f32], n: usize, out: &mut [f32]) {
        assert!(x.len() >= R * k && w.len() >= n * k && out.len() >= R * n);
        let nj = n - n % J;
        let mut j = 0;
        while j < nj {
            dots_at::<R, J>(x, k, w, n, out, j);
            j += J;
        }
        while j < n {
            dots_at::<R, 1>(x, k, w, n, out, j);
            j += 1;
        }
    }

    #[inline(always)]
    fn dots_at<const R: usize, const J: usize>(x: &[f32], k: usize, w: &[f32], n: usize, out: &mut [f32], j: usize) {
        assert!(j + J <= n && x.len() >= R * k && w.len() >= n * k && out.len() >= R * n);
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        let k4 = k & !3;
        let mut acc = [[f32x4_splat(0.0); J]; R];
        // SAFETY: c + 4 ≤ k4 ≤ k, rows j + jj < j + J ≤ n of w, rows r < R of x (asserted above).
        unsafe {
            let mut c = 0;
            while c < k4 {
                let mut wv = [f32x4_splat(0.0); J];
                for jj in 0..J {
                    wv[jj] = v128_load(wp.add((j + jj) * k + c) as *const v128);
                }
                for r in 0..R {
                    let xv = v128_load(xp.add(r * k + c) as *const v128);
                    for jj in 0..J {
                        acc[r][jj] = f32x4_add(acc[r][jj], f32x4_mul(xv, wv[jj]));
                    }
                }
                c += 4;
            }
        }
        for r in 0..R {
            for jj in 0..J {
                let v = acc[r][jj];
                let mut s = (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
                    + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v));
                for c in k4..k {
                    s += x[r * k + c] * w[(j + jj) * k + c];
                }
                out[r * n + j + jj] = s;
            }
        }
    }

    /// `out[r, j] = Σ_b scales[j,b]·xs[r,b]·(codes[j, block b] · xq[r, block b])` for R rows:
    /// each 32-weight block is widened to i16 once and dotted with every row (i32x4.dot_i16x8_s).
    /// The block scales are applied four blocks at a time: the integer dots of blocks b..b+4 are
    /// reduced to one i32x4 whose lane t is block b+t's dot, converted once and multiplied by
    /// `scales[j, b..b+4] · xs[r, b..b+4]` (two vector loads), instead of a convert, a scalar
    /// product and a broadcast per block.
    #[inline(always)]
    pub fn q8_rows<const R: usize>(xq: &[i16], xs: &[f32], k: usize, codes: &[i8], scales: &[f32], n: usize, out: &mut [f32]) {
        for j in 0..n {
            q8_col::<R>(xq, xs, k, codes, scales, n, out, j);
        }
    }

    /// `[Σa, Σb, Σc, Σd]`: the lane sums of four i32x4 vectors.
    #[inline(always)]
    fn hsum4(a: v128, b: v128, c: v128, d: v128) -> v128 {
        let ab = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(a, b), i32x4_shuffle::<2, 6, 3, 7>(a, b));
        let cd = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(c, d), i32x4_shuffle::<2, 6, 3, 7>(c, d));
        i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(ab, cd), i32x4_shuffle::<2, 3, 6, 7>(ab, cd))
    }

    /// Block b's integer dot of the widened weights `w` with row `x` (32 i16 at `x`), as 4 lanes.
    #[inline(always)]
    unsafe fn block_dot(w: &[v128; 4], x: *const i16) -> v128 {
        i32x4_add(
            i32x4_add(i32x4_dot_i16x8(w[0], v128_load(x as *const v128)), i32x4_dot_i16x8(w[1], v128_load(x.add(8) as *const v128))),
            i32x4_add(i32x4_dot_i16x8(w[2], v128_load(x.add(16) as *const v128)), i32x4_dot_i16x8(w[3], v128_load(x.add(24) as *const v128))),
        )
    }

    /// The 32 codes at `p` widened to four i16x8.
    #[inline(always)]
    unsafe fn widen(p: *const i8) -> [v128; 4] {
        let w0 = v128_load(p as *const v128);
        let w1 = v128_load(p.add(16) as *const v128);
        [i16x8_extend_low_i8x16(w0), i16x8_extend_high_i8x16(w0), i16x8_extend_low_i8x16(w1), i16x8_extend_high_i8x16(w1)]
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn q8_col<const R: usize>(xq: &[i16], xs: &[f32], k: usize, codes: &[i8], scales: &[f32], n: usize, out: &mut [f32], j: usize) {
        let blocks = k / 32;
        let groups = blocks / 4;
        assert!(j < n && xq.len() >= R * k && xs.len() >= R * blocks && codes.len() >= n * k);
        assert!(scales.len() >= n * blocks && out.len() >= R * n);
        let (xp, xsp) = (xq.as_ptr(), xs.as_ptr());
        let (cp, sp) = (codes[j * k..].as_ptr(), scales[j * blocks..].as_ptr());
        let mut acc = [f32x4_splat(0.0); R];
        // SAFETY: blocks b < blocks of row j of codes (32 bytes at j·k + 32b) and of each row r < R
        // of xq (32 i16 at r·k + 32b); scales[j·blocks + b..+4] and xs[r·blocks + b..+4] for
        // b + 4 ≤ 4·groups ≤ blocks; all within the lengths asserted above.
        unsafe {
            for g in 0..groups {
                let b = 4 * g;
                let w = [widen(cp.add(b * 32)), widen(cp.add(b * 32 + 32)), widen(cp.add(b * 32 + 64)), widen(cp.add(b * 32 + 96))];
                let ws = v128_load(sp.add(b) as *const v128);
                for r in 0..R {
                    let x = xp.add(r * k + b * 32);
                    let sum = hsum4(block_dot(&w[0], x), block_dot(&w[1], x.add(32)), block_dot(&w[2], x.add(64)), block_dot(&w[3], x.add(96)));
                    let s = f32x4_mul(ws, v128_load(xsp.add(r * blocks + b) as *const v128));
                    acc[r] = f32x4_add(acc[r], f32x4_mul(f32x4_convert_i32x4(sum), s));
                }
            }
            for b in 4 * groups..blocks {
                let w = widen(cp.add(b * 32));
                let wsb = *sp.add(b);
                for r in 0..R {
                    let d = block_dot(&w, xp.add(r * k + b * 32));
                    acc[r] = f32x4_add(acc[r], f32x4_mul(f32x4_convert_i32x4(d), f32x4_splat(wsb * *xsp.add(r * blocks + b))));
                }
            }
        }
        for r in 0..R {
            let v = acc[r];
            out[r * n + j] = (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
                + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v));
        }
    }

    /// One block of [`super::quantize_rows`]: its codes into `q`, returns (scale, exact-order-free
    /// float sum). Same rounding as the scalar version (round half away from zero, then clamp);
    /// the maximum ignores NaN as the scalar comparison does (pseudo-max), the sum adds four lanes.
    #[inline(always)]
    pub fn quantize_block(v: &[f32], q: &mut [i16]) -> (f32, f32) {
        assert!(v.len() == 32 && q.len() == 32);
        let (vp, qp) = (v.as_ptr(), q.as_mut_ptr());
        // SAFETY: 32 f32 of v and 32 i16 of q (asserted above): eight 16-byte loads, four stores.
        unsafe {
            let mut x = [f32x4_splat(0.0); 8];
            let (mut amax, mut sum) = (f32x4_splat(0.0), f32x4_splat(0.0));
            for c in 0..8 {
                x[c] = v128_load(vp.add(4 * c) as *const v128);
                amax = f32x4_pmax(amax, f32x4_abs(x[c]));
                sum = f32x4_add(sum, x[c]);
            }
            let amax = {
                let m = |a: f32, b: f32| if b > a { b } else { a };
                m(m(f32x4_extract_lane::<0>(amax), f32x4_extract_lane::<1>(amax)), m(f32x4_extract_lane::<2>(amax), f32x4_extract_lane::<3>(amax)))
            };
            let sum = (f32x4_extract_lane::<0>(sum) + f32x4_extract_lane::<1>(sum)) + (f32x4_extract_lane::<2>(sum) + f32x4_extract_lane::<3>(sum));
            let scale = amax / 127.0;
            let inv = f32x4_splat(if scale > 0.0 { 1.0 / scale } else { 0.0 });
            let (sign, half) = (i32x4_splat(i32::MIN), f32x4_splat(0.5));
            let (lo, hi) = (i16x8_splat(-127), i16x8_splat(127));
            for c in 0..4 {
                let t0 = f32x4_mul(x[2 * c], inv);
                let t1 = f32x4_mul(x[2 * c + 1], inv);
                // t ± 0.5 with the sign of t (t ≥ 0 ⇔ sign bit clear, −0 rounds to 0 either way)
                let r0 = i32x4_trunc_sat_f32x4(f32x4_add(t0, v128_or(half, v128_and(t0, sign))));
                let r1 = i32x4_trunc_sat_f32x4(f32x4_add(t1, v128_or(half, v128_and(t1, sign))));
                let w = i16x8_max(lo, i16x8_min(hi, i16x8_narrow_i32x4(r0, r1)));
                v128_store(qp.add(8 * c) as *mut v128, w);
            }
            (scale, sum)
        }
    }

    /// `gate ← gate · σ(gate) · up` four lanes at a time, lane for lane the scalar
    /// [`super::silu_mul`] (σ from `exp4` of −|g|, which is [`crate::simd::exp_f32`] per lane);
    /// returns how many leading values it did (a multiple of 4).
    #[inline(always)]
    pub fn silu_mul4(gate: &mut [f32], up: &[f32]) -> usize {
        let n4 = gate.len().min(up.len()) & !3;
        let (gp, up_) = (gate.as_mut_ptr(), up.as_ptr());
        let one = f32x4_splat(1.0);
        let mut i = 0;
        // SAFETY: i + 4 ≤ n4 ≤ both lengths.
        unsafe {
            while i < n4 {
                let g = v128_load(gp.add(i) as *const v128);
                let u = v128_load(up_.add(i) as *const v128);
                let e = crate::simd128::exp4(f32x4_neg(f32x4_abs(g)));
                let pos = f32x4_ge(g, f32x4_splat(0.0));
                let s = v128_bitselect(f32x4_div(one, f32x4_add(one, e)), f32x4_div(e, f32x4_add(one, e)), pos);
                v128_store(gp.add(i) as *mut v128, f32x4_mul(f32x4_mul(g, s), u));
                i += 4;
            }
        }
        n4
    }

    #[inline(always)]
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        let mut acc = f32x4_splat(0.0);
        let mut i = 0;
        // SAFETY: i + 4 ≤ n ≤ both lengths.
        unsafe {
            while i + 4 <= n {
                acc = f32x4_add(acc, f32x4_mul(v128_load(ap.add(i) as *const v128), v128_load(bp.add(i) as *const v128)));
                i += 4;
            }
        }
        let mut s = (f32x4_extract_lane::<0>(acc) + f32x4_extract_lane::<1>(acc))
            + (f32x4_extract_lane::<2>(acc) + f32x4_extract_lane::<3>(acc));
        while i < n {
            s += a[i] * b[i];
            i += 1;
        }
        s
    }

    #[inline(always)]
    pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
        let n = y.len().min(x.len());
        let (yp, xp) = (y.as_mut_ptr(), x.as_ptr());
        let av = f32x4_splat(a);
        let mut i = 0;
        // SAFETY: i + 4 ≤ n ≤ both lengths; y is a unique borrow.
        unsafe {
            while i + 4 <= n {
                let p = yp.add(i) as *mut v128;
                v128_store(p, f32x4_add(v128_load(p), f32x4_mul(av, v128_load(xp.add(i) as *const v128))));
                i += 4;
            }
        }
        while i < n {
            y[i] += a * x[i];
            i += 1;
        }
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod imp {
    //! Scalar versions (host builds and tests).

    pub fn stream<const R: usize>(x: &[f32], k: usize, w: &[f32], n: usize, out: &mut [f32]) {
        for kk in 0..k {
            for r in 0..R {
                let a = x[r * k + kk];
                for j in 0..n {
                    out[r * n + j] += a * w[kk * n + j];
                }
            }
        }
    }

    pub fn dots<const R: usize, const J: usize>(x: &[f32], k: usize, w: &[f32], n: usize, out: &mut [f32]) {
        for r in 0..R {
            for j in 0..n {
                out[r * n + j] = dot(&x[r * k..(r + 1) * k], &w[j * k..(j + 1) * k]);
            }
        }
    }

    pub fn q8_rows<const R: usize>(xq: &[i16], xs: &[f32], k: usize, codes: &[i8], scales: &[f32], n: usize, out: &mut [f32]) {
        let blocks = k / 32;
        for r in 0..R {
            for j in 0..n {
                let mut s = 0.0f32;
                for b in 0..blocks {
                    let mut d = 0i32;
                    for i in 0..32 {
                        d += codes[j * k + b * 32 + i] as i32 * xq[r * k + b * 32 + i] as i32;
                    }
                    s += d as f32 * (scales[j * blocks + b] * xs[r * blocks + b]);
                }
                out[r * n + j] = s;
            }
        }
    }

    pub fn quantize_block(v: &[f32], q: &mut [i16]) -> (f32, f32) {
        let (mut amax, mut sum) = (0.0f32, 0.0f32);
        for &a in v {
            let a_abs = if a < 0.0 { -a } else { a };
            if a_abs > amax {
                amax = a_abs;
            }
            sum += a;
        }
        let scale = amax / 127.0;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        for (i, &a) in v.iter().enumerate() {
            let t = a * inv;
            // round half away from zero, then clamp (|t| ≤ 127 up to rounding)
            let r = if t >= 0.0 { (t + 0.5) as i32 } else { (t - 0.5) as i32 };
            q[i] = r.clamp(-127, 127) as i16;
        }
        (scale, sum)
    }

    pub fn silu_mul4(_gate: &mut [f32], _up: &[f32]) -> usize {
        0
    }

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
        for (v, &u) in y.iter_mut().zip(x) {
            *v += a * u;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    fn vec(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.normal() as f32).collect()
    }

    #[test]
    fn linear_matches_naive_sums_for_every_row_remainder() {
        let mut rng = Rng::new(7);
        for &(m, k, n) in &[(1, 5, 3), (2, 16, 8), (3, 9, 17), (4, 8, 24), (7, 12, 40), (8, 7, 13), (9, 12, 40), (13, 33, 19), (5, 4, 7), (2, 3, 5)] {
            let (x, w, b) = (vec(&mut rng, m * k), vec(&mut rng, k * n), vec(&mut rng, n));
            let mut out = vec![0.0; m * n];
            linear(&x, m, k, &w, n, Some(&b), &mut out);
            let mut t = vec![0.0; m * n];
            let wt: Vec<f32> = (0..n * k).map(|i| w[(i % k) * n + i / k]).collect();
            linear_t(&x, m, k, &wt, n, &mut t);
            for r in 0..m {
                for j in 0..n {
                    let want: f64 = b[j] as f64 + (0..k).map(|i| x[r * k + i] as f64 * w[i * n + j] as f64).sum::<f64>();
                    assert!((out[r * n + j] as f64 - want).abs() < 1e-4, "{m}x{k}x{n} [{r},{j}]");
                    assert!((t[r * n + j] as f64 + b[j] as f64 - want).abs() < 1e-4);
                }
            }
        }
    }

    #[test]
    fn q8_linear_is_the_dequantized_product_within_the_activation_rounding() {
        let mut rng = Rng::new(11);
        for &(m, k, n) in &[(1, 32, 3), (3, 64, 5), (9, 96, 7)] {
            let blocks = k / Q8_BLOCK;
            let x = vec(&mut rng, m * k);
            let codes: Vec<i8> = (0..n * k).map(|_| (rng.below(255) as i32 - 127) as i8).collect();
            let scales: Vec<f32> = (0..n * blocks).map(|_| 0.01 + rng.f64() as f32 * 0.02).collect();
            let mins: Vec<f32> = (0..n * blocks).map(|_| rng.normal() as f32 * 0.1).collect();
            let bias = vec(&mut rng, n);
            let (mut xq, mut xs, mut xsum) = (vec![0i16; m * k], vec![0.0; m * blocks], vec![0.0; m * blocks]);
            quantize_rows(&x, m, k, &mut xq, &mut xs, &mut xsum);
            let mut out = vec![0.0; m * n];
            linear_q8(&xq, &xs, &xsum, m, k, &codes, &scales, Some(&mins), n, Some(&bias), &mut out);
            for r in 0..m {
                for j in 0..n {
                    let w = |i: usize| scales[j * blocks + i / 32] as f64 * codes[j * k + i] as f64 + mins[j * blocks + i / 32] as f64;
                    let exact: f64 = bias[j] as f64 + (0..k).map(|i| x[r * k + i] as f64 * w(i)).sum::<f64>();
                    // x rounded to 1/254 of each block's max: error ≤ Σ_i |scale·code|·xs/2
                    let bound: f64 = (0..k).map(|i| (scales[j * blocks + i / 32] as f64 * codes[j * k + i] as f64).abs() * xs[r * blocks + i / 32] as f64 / 2.0).sum::<f64>();
                    assert!((out[r * n + j] as f64 - exact).abs() <= bound + 1e-4, "{m}x{k}x{n} [{r},{j}]");
                }
            }
            // the integer products themselves: with x already on the grid the result is exact
            // every block holds a 127, so its scale is exactly 1 and no value is rounded
            let xi: Vec<f32> = (0..m * k).map(|i| if i % 32 == 0 { 127.0 } else { ((i * 7) % 255) as f32 - 127.0 }).collect();
            quantize_rows(&xi, m, k, &mut xq, &mut xs, &mut xsum);
            linear_q8(&xq, &xs, &xsum, m, k, &codes, &scales, None, n, None, &mut out);
            for r in 0..m {
                for j in 0..n {
                    let exact: f64 = (0..k).map(|i| xi[r * k + i] as f64 * scales[j * blocks + i / 32] as f64 * codes[j * k + i] as f64).sum();
                    assert!((out[r * n + j] as f64 - exact).abs() < 1e-3 * (1.0 + exact.abs()), "integral x {r},{j}");
                }
            }
        }
    }

    #[test]
    fn norms_and_activations_match_their_formulas() {
        let x = [1.0f32, 2.0, 3.0, 6.0];
        let mut out = [0.0f32; 4];
        layer_norm(&x, 1, 4, &[1.0; 4], &[0.5; 4], 0.0, &mut out);
        let sd = (((1.0f64 - 3.0).powi(2) + 1.0 + 0.0 + 9.0) / 4.0).sqrt();
        assert!((out[3] as f64 - (3.0 / sd + 0.5)).abs() < 1e-6);
        rms_norm(&x, 1, 4, &[2.0; 4], 0.0, &mut out);
        assert!((out[0] as f64 - 2.0 / (50.0f64 / 4.0).sqrt()).abs() < 1e-6);
        for &a in &[-9.0f32, -1.5, -1e-3, 0.0, 0.3, 2.0, 12.0] {
            let mut g = [a];
            gelu_tanh(&mut g);
            let y = (2.0f64 / core::f64::consts::PI).sqrt() * (a as f64 + 0.044715 * (a as f64).powi(3));
            assert!((g[0] as f64 - 0.5 * a as f64 * (1.0 + y.tanh())).abs() < 2e-6, "gelu {a}");
            let mut s = [a];
            silu_mul(&mut s, &[3.0]);
            assert!((s[0] as f64 - 3.0 * a as f64 / (1.0 + (-a as f64).exp())).abs() < 2e-5, "silu {a}");
        }
        assert!((libm_sqrt(2.0) - 2f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn attention_matches_a_naive_masked_softmax_with_grouped_heads() {
        let mut rng = Rng::new(3);
        let s = AttentionShape { t: 3, total: 7, heads: 4, kv_heads: 2, head_dim: 6 };
        let q = vec(&mut rng, s.t * s.heads * s.head_dim);
        let k = vec(&mut rng, s.kv_heads * s.total * s.head_dim);
        let v = vec(&mut rng, s.kv_heads * s.total * s.head_dim);
        let mask: Vec<u8> = (0..s.t * s.total).map(|i| ((i % s.total) <= 4 + i / s.total) as u8).collect();
        let mut out = vec![0.0; s.t * s.heads * s.head_dim];
        attention(&q, &k, &v, &mask, s, 0.4, &mut vec![0.0; s.total], &mut out);
        for i in 0..s.t {
            for h in 0..s.heads {
                let g = h / 2;
                let hd = s.head_dim;
                let sc: Vec<f64> = (0..s.total)
                    .map(|j| (0..hd).map(|d| q[i * 24 + h * hd + d] as f64 * k[(g * s.total + j) * hd + d] as f64).sum::<f64>() * 0.4)
                    .collect();
                let vis: Vec<usize> = (0..s.total).filter(|&j| mask[i * s.total + j] != 0).collect();
                let mx = vis.iter().map(|&j| sc[j]).fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = vis.iter().map(|&j| (sc[j] - mx).exp()).sum();
                for d in 0..hd {
                    let want: f64 = vis.iter().map(|&j| (sc[j] - mx).exp() / z * v[(g * s.total + j) * hd + d] as f64).sum();
                    assert!((out[i * 24 + h * hd + d] as f64 - want).abs() < 1e-5);
                }
            }
        }
        let none = vec![0u8; s.t * s.total];
        attention(&q, &k, &v, &none, s, 0.4, &mut vec![0.0; s.total], &mut out);
        assert!(out.iter().all(|&x| x == 0.0));
    }
}
