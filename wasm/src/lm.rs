//! The arithmetic of a transformer forward pass, for the `kernel` model backend (a model run
//! without onnxruntime, `src/model/kernel_session.ts`): linear layers, layer / RMS norms, the
//! tanh-GELU and SiLU-gate activations, and masked multi-head attention over a KV cache.
//!
//! Everything is f32 row-major. A linear layer's weight is `[in, out]` (y = x · W, what an ONNX
//! `MatMul` holds); [`linear_t`] takes `[out, in]` (a tied embedding used as the output head).
//! The JS side validates shapes and lays out the buffers; these functions assume them.

use crate::simd::exp_f32;

/// Columns one register block of [`linear`] computes (two 4-lane vectors).
const COLS: usize = 8;

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
    let mut r = 0;
    while r < m {
        match m - r {
            1 => rows_acc::<1>(x, r, k, w, n, out),
            2 => rows_acc::<2>(x, r, k, w, n, out),
            3 => rows_acc::<3>(x, r, k, w, n, out),
            _ => rows_acc::<4>(x, r, k, w, n, out),
        }
        r += 4;
    }
}

/// Adds `x[r0..r0+R] · w` into `out`'s rows `r0..r0+R`.
#[inline(always)]
fn rows_acc<const R: usize>(x: &[f32], r0: usize, k: usize, w: &[f32], n: usize, out: &mut [f32]) {
    let blocks = n / COLS;
    for jb in 0..blocks {
        imp::block::<R>(x, r0, k, w, n, jb * COLS, out);
    }
    for j in blocks * COLS..n {
        for i in 0..R {
            let xr = &x[(r0 + i) * k..(r0 + i + 1) * k];
            let mut s = 0.0f32;
            for kk in 0..k {
                s += xr[kk] * w[kk * n + j];
            }
            out[(r0 + i) * n + j] += s;
        }
    }
}

/// `out[m×n] = x[m×k] · wᵀ` for `w[n×k]` (each output is a dot product with a row of `w`).
pub fn linear_t(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: &mut [f32]) {
    assert!(x.len() >= m * k && w.len() >= n * k && out.len() >= m * n);
    for j in 0..n {
        let wr = &w[j * k..(j + 1) * k];
        for r in 0..m {
            out[r * n + j] = imp::dot(&x[r * k..(r + 1) * k], wr);
        }
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
    //! simd128 inner loops. `unsafe` here is raw loads and stores at offsets the callers'
    //! asserts bound: `block` reads `x[(r0+R)·k]`, `w[k·n]` and writes `out[(r0+R)·n]`, columns
    //! `j..j+8 ≤ n`; `dot` / `axpy` read within equal-length slices.
    use super::COLS;
    use core::arch::wasm32::*;

    #[inline(always)]
    pub fn block<const R: usize>(x: &[f32], r0: usize, k: usize, w: &[f32], n: usize, j: usize, out: &mut [f32]) {
        assert!(j + COLS <= n && x.len() >= (r0 + R) * k && w.len() >= k * n && out.len() >= (r0 + R) * n);
        let (xp, wp, op) = (x.as_ptr(), w.as_ptr(), out.as_mut_ptr());
        // SAFETY: every offset below is within the bounds asserted above.
        unsafe {
            let mut acc = [[f32x4_splat(0.0); 2]; R];
            for (i, a) in acc.iter_mut().enumerate() {
                let o = op.add((r0 + i) * n + j);
                a[0] = v128_load(o as *const v128);
                a[1] = v128_load(o.add(4) as *const v128);
            }
            for kk in 0..k {
                let wr = wp.add(kk * n + j);
                let w0 = v128_load(wr as *const v128);
                let w1 = v128_load(wr.add(4) as *const v128);
                for (i, a) in acc.iter_mut().enumerate() {
                    let xs = f32x4_splat(*xp.add((r0 + i) * k + kk));
                    a[0] = f32x4_add(a[0], f32x4_mul(xs, w0));
                    a[1] = f32x4_add(a[1], f32x4_mul(xs, w1));
                }
            }
            for (i, a) in acc.iter().enumerate() {
                let o = op.add((r0 + i) * n + j);
                v128_store(o as *mut v128, a[0]);
                v128_store(o.add(4) as *mut v128, a[1]);
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
    use super::COLS;

    pub fn block<const R: usize>(x: &[f32], r0: usize, k: usize, w: &[f32], n: usize, j: usize, out: &mut [f32]) {
        for i in 0..R {
            for c in j..j + COLS {
                let mut s = 0.0f32;
                for kk in 0..k {
                    s += x[(r0 + i) * k + kk] * w[kk * n + c];
                }
                out[(r0 + i) * n + c] += s;
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
        for &(m, k, n) in &[(1, 5, 3), (2, 16, 8), (3, 9, 17), (4, 8, 24), (7, 12, 40)] {
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
