//! Row primitives: one entry point per pass over a row, dispatching to the wasm `simd128`
//! implementation ([`crate::simd128`]) when the target has it, else to the portable scalar code
//! here. Both paths use the same operation order per element, so a row gives the same f32
//! values either way (sums may differ in the last bits: the vector path keeps lane partials).
//!
//! Sums are accumulated in f64. Inverse-CDF walks use per-block sums ([`BLOCK`] elements).

/// Elements per block of the block sums used by the inverse-CDF walks.
pub const BLOCK: usize = 64;

/// Below this exponent argument [`exp_f32`] returns exactly 0 (it stays a normal f32 above).
pub const EXP_LO: f32 = -87.3;
pub(crate) const LOG2E: f32 = core::f32::consts::LOG2_E;
pub(crate) const C1: f32 = 0.693_359_4;
pub(crate) const C2: f32 = -2.121_944_4e-4;
pub(crate) const P0: f32 = 1.987_569_1e-4;
pub(crate) const P1: f32 = 1.398_199_9e-3;
pub(crate) const P2: f32 = 8.333_452e-3;
pub(crate) const P3: f32 = 4.166_579_6e-2;
pub(crate) const P4: f32 = 1.666_666_5e-1;
pub(crate) const P5: f32 = 5.000_000_1e-1;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use crate::simd128 as v;

/// `max` that returns NaN when either side is NaN (like wasm `f32.max`).
#[inline(always)]
pub fn nan_max(a: f32, b: f32) -> f32 {
    if a != a || b != b {
        f32::NAN
    } else if a > b {
        a
    } else {
        b
    }
}

/// `min` that returns NaN when either side is NaN (like wasm `f32.min`).
#[inline(always)]
pub fn nan_min(a: f32, b: f32) -> f32 {
    if a != a || b != b {
        f32::NAN
    } else if a < b {
        a
    } else {
        b
    }
}

/// Round to nearest, ties to even, for |x| < 2^22 (the vector path uses `f32x4.nearest`).
#[inline(always)]
fn nearest(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    if x >= 0.0 {
        (x + MAGIC) - MAGIC
    } else {
        (x - MAGIC) + MAGIC
    }
}

/// Fast e^z for z ≤ 0 (Cephes `expf` polynomial, Cody–Waite reduction, about 1 ulp);
/// exactly 0 for z < [`EXP_LO`] (including -∞).
#[inline(always)]
pub fn exp_f32(z: f32) -> f32 {
    if !(z >= EXP_LO) {
        return 0.0;
    }
    let n = nearest(z * LOG2E);
    let r = (z - n * C1) - n * C2;
    let mut y = P0;
    y = y * r + P1;
    y = y * r + P2;
    y = y * r + P3;
    y = y * r + P4;
    y = y * r + P5;
    let y = (y * (r * r) + r) + 1.0;
    let pow = f32::from_bits((((n as i32) + 127) << 23) as u32);
    y * pow
}

/// Largest element, NaN if any element is NaN, -∞ for an empty row.
pub fn max(x: &[f32]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        v::max(x)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        x.iter().fold(f32::NEG_INFINITY, |m, &e| nan_max(m, e))
    }
}

/// Σ exp((x − max)·inv_t) in f64, without storing (the bench floor).
pub fn exp_sum(x: &[f32], max: f32, inv_t: f32) -> f64 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        v::exp_sum(x, max, inv_t)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        x.iter().map(|&e| exp_f32((e - max) * inv_t) as f64).sum()
    }
}

/// `dst[i] = src[i] >= keep_from ? exp((src[i] − max)·inv_t) : 0`; returns Σ dst in f64.
pub fn exp_store_sum(src: &[f32], dst: &mut [f32], max: f32, inv_t: f32, keep_from: f32) -> f64 {
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        v::exp_store_sum(src, dst, max, inv_t, keep_from)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let mut s = 0.0f64;
        for (d, &e) in dst.iter_mut().zip(src) {
            *d = if e >= keep_from { exp_f32((e - max) * inv_t) } else { 0.0 };
            s += *d as f64;
        }
        s
    }
}

/// `w[i] = key[i] >= from ? w[i] : 0`; returns the kept Σ w in f64.
pub fn keep_from(key: &[f32], w: &mut [f32], from: f32) -> f64 {
    let n = key.len().min(w.len());
    let (key, w) = (&key[..n], &mut w[..n]);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        v::keep_from(key, w, from)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let mut s = 0.0f64;
        for (d, &e) in w.iter_mut().zip(key) {
            if !(e >= from) {
                *d = 0.0;
            }
            s += *d as f64;
        }
        s
    }
}

/// `x[i] *= s`.
pub fn scale(x: &mut [f32], s: f32) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        v::scale(x, s)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        for e in x.iter_mut() {
            *e *= s;
        }
    }
}

/// Min, max (both NaN-propagating) and f64 sum of a row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Smallest element (NaN if any is NaN).
    pub min: f32,
    /// Largest element (NaN if any is NaN).
    pub max: f32,
    /// Σ in f64.
    pub sum: f64,
}

/// One pass: [`Stats`] of a row.
pub fn stats(x: &[f32]) -> Stats {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        v::stats(x)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let mut s = Stats { min: f32::INFINITY, max: f32::NEG_INFINITY, sum: 0.0 };
        for &e in x {
            s.min = nan_min(s.min, e);
            s.max = nan_max(s.max, e);
            s.sum += e as f64;
        }
        s
    }
}

/// Result of [`classify`]: sums over the raw (unscaled) rows and their validity stats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Classes {
    /// Σ q over tokens with p·sp ≥ k·q·sq (ratio ≥ k, including q = 0).
    pub a: f64,
    /// Σ p over tokens with p·sp ≤ q·sq (ratio ≤ 1, including p = 0).
    pub b: f64,
    /// Σ p over the tokens counted in `a` (for e(ρ) = Σ max(0, p − ρq) without cancellation).
    pub pa: f64,
    /// Σ q over the tokens counted in `b` (for d(ρ) = Σ max(0, q − p/ρ) = 1 − β).
    pub qb: f64,
    /// Min / max of p (NaN-propagating).
    pub p_min: f32,
    /// Max of p.
    pub p_max: f32,
    /// Min of q.
    pub q_min: f32,
    /// Max of q.
    pub q_max: f32,
}

/// One pass over (p, q): adds q to `a` and p to `pa` where the ratio r = (p·sp)/(q·sq) ≥ k, p to
/// `b` and q to `qb` where r ≤ 1, and calls `middle(i)` for every other token (1 < r < k, in increasing i).
pub fn classify(p: &[f32], q: &[f32], sp: f32, sq: f32, k: f32, middle: impl FnMut(usize)) -> Classes {
    let n = p.len().min(q.len());
    let (p, q) = (&p[..n], &q[..n]);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        v::classify(p, q, sp, sq, k, middle)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let mut middle = middle;
        let mut c = Classes {
            a: 0.0,
            b: 0.0,
            pa: 0.0,
            qb: 0.0,
            p_min: f32::INFINITY,
            p_max: f32::NEG_INFINITY,
            q_min: f32::INFINITY,
            q_max: f32::NEG_INFINITY,
        };
        for i in 0..n {
            let (x, y) = (p[i], q[i]);
            c.p_min = nan_min(c.p_min, x);
            c.p_max = nan_max(c.p_max, x);
            c.q_min = nan_min(c.q_min, y);
            c.q_max = nan_max(c.q_max, y);
            let (pp, qq) = (x * sp, y * sq);
            if pp <= qq {
                c.b += x as f64;
                c.qb += y as f64;
            } else if pp >= qq * k {
                c.a += y as f64;
                c.pa += x as f64;
            } else {
                middle(i);
            }
        }
        c
    }
}

/// The K-SEQ residual weight max(0, p − min(q, p/ρ)·c) with p = p̃·sp, q = q̃·sq, in f64.
#[inline(always)]
pub fn residual_weight(p: f32, q: f32, sp: f64, sq: f64, rho: f64, c: f64) -> f64 {
    let (x, y) = (p as f64 * sp, q as f64 * sq);
    let m = x / rho;
    let m = if y < m { y } else { m };
    let w = x - m * c;
    if w > 0.0 {
        w
    } else {
        0.0
    }
}

/// (Σ max(0, q − p/ρ), Σp, Σq) with p = p̃·sp, q = q̃·sq, in one sequential f64 pass (the
/// reference's order, so given the same ρ and β both kernels form the same residual factor).
pub fn miss(p: &[f32], q: &[f32], sp: f64, sq: f64, rho: f64) -> (f64, f64, f64) {
    let (mut d, mut sum_p, mut sum_q) = (0.0, 0.0, 0.0);
    for (&x, &y) in p.iter().zip(q) {
        let (x, y) = (x as f64 * sp, y as f64 * sq);
        let m = y - x / rho;
        d += if m > 0.0 { m } else { 0.0 };
        sum_p += x;
        sum_q += y;
    }
    (d, sum_p, sum_q)
}

/// Residual weights summed per [`BLOCK`] into `blocks` (length ≥ ⌈n/BLOCK⌉); returns the total.
pub fn residual_blocks(p: &[f32], q: &[f32], sp: f64, sq: f64, rho: f64, c: f64, blocks: &mut [f64]) -> f64 {
    let n = p.len().min(q.len());
    let (p, q) = (&p[..n], &q[..n]);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        v::residual_blocks(p, q, sp, sq, rho, c, blocks)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let mut total = 0.0;
        for (j, (pb, qb)) in p.chunks(BLOCK).zip(q.chunks(BLOCK)).enumerate() {
            let s: f64 = pb.iter().zip(qb).map(|(&x, &y)| residual_weight(x, y, sp, sq, rho, c)).sum();
            blocks[j] = s;
            total += s;
        }
        total
    }
}

/// Element sums per [`BLOCK`] of an f32 row into `blocks`; returns the total.
pub fn blocks_f32(x: &[f32], blocks: &mut [f64]) -> f64 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        v::blocks_f32(x, blocks)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let mut total = 0.0;
        for (j, b) in x.chunks(BLOCK).enumerate() {
            let s: f64 = b.iter().map(|&e| e as f64).sum();
            blocks[j] = s;
            total += s;
        }
        total
    }
}

/// Element sums per [`BLOCK`] of an f64 row into `blocks`; returns the total.
pub fn blocks_f64(x: &[f64], blocks: &mut [f64]) -> f64 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        v::blocks_f64(x, blocks)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let mut total = 0.0;
        for (j, b) in x.chunks(BLOCK).enumerate() {
            let s: f64 = b.iter().sum();
            blocks[j] = s;
            total += s;
        }
        total
    }
}

/// `dst[i] = src[i] / div` (f32 → f64).
pub fn widen_div(src: &[f32], dst: &mut [f64], div: f64) {
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        v::widen_div(src, dst, div)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s as f64 / div;
        }
    }
}

/// Σ max(0, t − d) in f64.
pub fn pos_diff_sum(t: &[f64], d: &[f64]) -> f64 {
    let n = t.len().min(d.len());
    let (t, d) = (&t[..n], &d[..n]);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        v::pos_diff_sum(t, d)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        t.iter().zip(d).map(|(&a, &b)| pos(a - b)).sum()
    }
}

/// `t[i] = max(0, t[i] − d[i]) / div`.
pub fn pos_diff_div(t: &mut [f64], d: &[f64], div: f64) {
    let n = t.len().min(d.len());
    let (t, d) = (&mut t[..n], &d[..n]);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        v::pos_diff_div(t, d, div)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        for (a, &b) in t.iter_mut().zip(d) {
            *a = pos(*a - b) / div;
        }
    }
}

/// `x[i] /= div`.
pub fn div_f64(x: &mut [f64], div: f64) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        v::div_f64(x, div)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        for e in x.iter_mut() {
            *e /= div;
        }
    }
}

#[inline(always)]
pub(crate) fn pos(x: f64) -> f64 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;
    extern crate std;
    use std::vec::Vec;

    fn sizes() -> Vec<usize> {
        let mut v: Vec<usize> = (1..=17).collect();
        v.extend([63, 64, 65, 127, 128, 129, 1000, 4099]);
        v
    }

    #[test]
    fn exp_matches_libm_to_a_few_ulp() {
        let mut rng = Rng::new(1);
        let mut worst = 0.0f64;
        for _ in 0..200_000 {
            let z = -(rng.f64() * 87.0) as f32;
            let got = exp_f32(z) as f64;
            let want = (z as f64).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn row_passes_match_naive_versions() {
        let mut rng = Rng::new(2);
        for n in sizes() {
            for _ in 0..20 {
                let x: Vec<f32> = (0..n).map(|_| (rng.normal() * 4.0) as f32).collect();
                let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                assert_eq!(max(&x), m);
                let want: f64 = x.iter().map(|&e| ((e - m) as f64 * 0.5).exp()).sum();
                let got = exp_sum(&x, m, 0.5);
                assert!(((got - want) / want).abs() < 1e-6);
                let mut d = vec_f32(n);
                let thr = x[rng.below(n)];
                let s = exp_store_sum(&x, &mut d, m, 0.5, thr);
                let mut naive = 0.0;
                for i in 0..n {
                    let w = if x[i] >= thr { ((x[i] - m) as f64 * 0.5).exp() } else { 0.0 };
                    assert!((d[i] as f64 - w).abs() <= 1e-6 * w.max(1e-30));
                    naive += d[i] as f64;
                }
                assert!((s - naive).abs() <= 1e-12 * naive);
                let st = stats(&x);
                assert_eq!(st.max, m);
                assert_eq!(st.min, x.iter().cloned().fold(f32::INFINITY, f32::min));
                let mut y = x.clone();
                scale(&mut y, 0.25);
                assert!(y.iter().zip(&x).all(|(a, b)| *a == b * 0.25));
            }
        }
        let nan = [1.0f32, f32::NAN, 2.0];
        assert!(max(&nan).is_nan());
        assert!(stats(&nan).min.is_nan());
    }

    #[test]
    fn classify_splits_tokens_by_ratio() {
        let mut rng = Rng::new(3);
        for n in sizes() {
            let p: Vec<f32> = (0..n).map(|_| if rng.f64() < 0.2 { 0.0 } else { rng.f64() as f32 }).collect();
            let q: Vec<f32> = (0..n).map(|_| if rng.f64() < 0.2 { 0.0 } else { rng.f64() as f32 }).collect();
            let mut mids = Vec::new();
            let c = classify(&p, &q, 1.0, 1.0, 3.0, |i| mids.push(i));
            let (mut a, mut b, mut pa, mut qb, mut want) = (0.0, 0.0, 0.0, 0.0, Vec::new());
            for i in 0..n {
                if p[i] <= q[i] {
                    b += p[i] as f64;
                    qb += q[i] as f64;
                } else if p[i] >= 3.0 * q[i] {
                    a += q[i] as f64;
                    pa += p[i] as f64;
                } else {
                    want.push(i);
                }
            }
            assert_eq!(mids, want);
            assert!((c.a - a).abs() < 1e-12 && (c.b - b).abs() < 1e-12);
            assert!((c.pa - pa).abs() < 1e-12 && (c.qb - qb).abs() < 1e-12);
        }
    }

    #[test]
    fn block_sums_add_up() {
        let mut rng = Rng::new(4);
        for n in sizes() {
            let p: Vec<f32> = (0..n).map(|_| rng.f64() as f32).collect();
            let q: Vec<f32> = (0..n).map(|_| rng.f64() as f32).collect();
            let mut blocks = std::vec![0.0; (n + BLOCK - 1) / BLOCK];
            let t = residual_blocks(&p, &q, 1.0, 1.0, 1.5, 1.2, &mut blocks);
            let naive: f64 = (0..n).map(|i| residual_weight(p[i], q[i], 1.0, 1.0, 1.5, 1.2)).sum();
            assert!((t - naive).abs() <= 1e-12 * naive.max(1e-300));
            for (j, b) in blocks.iter().enumerate() {
                let lo = j * BLOCK;
                let hi = (lo + BLOCK).min(n);
                let s: f64 = (lo..hi).map(|i| residual_weight(p[i], q[i], 1.0, 1.0, 1.5, 1.2)).sum();
                assert!((b - s).abs() <= 1e-12 * s.max(1e-300));
            }
            let t = blocks_f32(&p, &mut blocks);
            assert!((t - p.iter().map(|&e| e as f64).sum::<f64>()).abs() < 1e-9);
            let w: Vec<f64> = p.iter().map(|&e| e as f64).collect();
            let t2 = blocks_f64(&w, &mut blocks);
            assert!((t - t2).abs() < 1e-9);
        }
    }

    #[test]
    fn f64_row_ops_match_naive_versions() {
        let mut rng = Rng::new(5);
        for n in sizes() {
            let t: Vec<f64> = (0..n).map(|_| rng.f64()).collect();
            let d: Vec<f64> = (0..n).map(|_| rng.f64()).collect();
            let s = pos_diff_sum(&t, &d);
            let naive: f64 = t.iter().zip(&d).map(|(a, b)| (a - b).max(0.0)).sum();
            assert!((s - naive).abs() < 1e-12);
            let mut t2 = t.clone();
            pos_diff_div(&mut t2, &d, 2.0);
            assert!(t2.iter().zip(t.iter().zip(&d)).all(|(x, (a, b))| *x == (a - b).max(0.0) / 2.0));
            div_f64(&mut t2, 4.0);
            let src: Vec<f32> = (0..n).map(|_| rng.f64() as f32).collect();
            let mut dst = std::vec![0.0; n];
            widen_div(&src, &mut dst, 3.0);
            assert!(dst.iter().zip(&src).all(|(a, b)| *a == *b as f64 / 3.0));
        }
    }

    fn vec_f32(n: usize) -> Vec<f32> {
        std::vec![0.0; n]
    }
}
