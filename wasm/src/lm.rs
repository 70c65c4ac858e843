//! The arithmetic of a transformer forward pass, for the `kernel` model backend (a model run
//! without onnxruntime, `src/model/kernel_session.ts`): linear layers, layer / RMS norms, the
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
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g * sigmoid(*g) * u;
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
