//! Exact ρ* for K-SEQ without sorting.
//!
//! With r = p/q, β(ρ) = A + B/ρ where A = Σ_{r ≥ ρ} q and B = Σ_{r < ρ} p. ρ* is the smallest ρ in
//! [1, k] with 1 − (1 − β)^k ≤ ρβ. For rows summing to 1 that condition is f(ρ) = e − d^k ≤ 0 with
//! d(ρ) = Σ max(0, q − p/ρ) = 1 − β = Q_B − B/ρ and e(ρ) = Σ max(0, p − ρq) = 1 − ρβ = P_A − ρA
//! (Q_B = Σ_{r < ρ} q, P_A = Σ_{r ≥ ρ} p); d and e are divided by Σq = A + Q_B and Σp = P_A + B, so
//! rows whose sums are not exactly 1 (float32 rounding, scaled weights) solve like the normalised
//! rows. No 1 − β is ever formed: p ≈ q (β ≈ 1) does not cancel, identical rows give ρ* = 1
//! exactly and disjoint ones f = 1 − 1 = 0. f falls in ρ (e falls, d rises). One pass classifies every token (r ≥ k → above, r ≤ 1 → below, else
//! into a compact list); a quickselect-style search then halves the list around pivot ratios,
//! folding the side that cannot hold the root into the above or below sums, until the root's
//! segment [lo, hi] (sums constant) is known; bisection inside it to float64 resolution gives
//! ρ* = hi (so f(ρ*) ≤ 0 holds). Expected O(V) in total.

use crate::simd;

/// One token strictly inside (1, k): its ratio and raw (unscaled) masses.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Entry {
    /// r = (p·sp)/(q·sq) in f64.
    pub r: f64,
    /// Raw p.
    pub p: f32,
    /// Raw q.
    pub q: f32,
}

/// ρ*, β(ρ*), the acceptance probability 1 − (1 − β)^k and the quantities behind it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rho {
    /// ρ*.
    pub rho: f64,
    /// β(ρ*) = Σ min(q, p/ρ*) over the whole row.
    pub beta: f64,
    /// 1 − d^k (see `miss`); 0 when β = 0.
    pub acceptance: f64,
    /// d(ρ*) = Σ max(0, q − p/ρ*) / Σq in [0, 1]: the probability that one candidate (drawn from
    /// the normalised q) is rejected; 1 − β for normalised rows, without the cancellation.
    pub miss: f64,
    /// Σp (scaled): the residual factor is acceptance·Σp/β.
    pub p_mass: f64,
}
/// Why a probability row was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowError {
    /// Element `index` of row `row` (0 = p, 1 = q) is negative, NaN or +∞.
    Bad {
        /// 0 for p, 1 for q.
        row: u32,
        /// First offending element.
        index: usize,
    },
    /// Row `row` has no mass.
    Zero {
        /// 0 for p, 1 for q.
        row: u32,
    },
}

/// x^k by binary powering (no_std has no `powi`).
pub fn powi(x: f64, k: u32) -> f64 {
    let (mut base, mut e, mut acc) = (x, k, 1.0);
    while e > 0 {
        if e & 1 == 1 {
            acc *= base;
        }
        base *= base;
        e >>= 1;
    }
    acc
}

/// The scaled masses on both sides of a ρ: "above" holds the tokens counted with r ≥ ρ, "below"
/// those with r < ρ (a token with r = ρ may sit on either side: it adds 0 to d and e). Tokens with
/// q = 0 < p are always above, tokens with p = 0 always below. Σp = P_A + B and Σq = A + Q_B.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sides {
    /// A = Σ q above.
    pub a: f64,
    /// P_A = Σ p above.
    pub pa: f64,
    /// B = Σ p below.
    pub b: f64,
    /// Q_B = Σ q below.
    pub qb: f64,
}

impl Sides {
    /// β(ρ) = A + B/ρ.
    #[inline]
    pub fn beta(&self, rho: f64) -> f64 {
        self.a + self.b / rho
    }

    /// Σp.
    #[inline]
    pub fn p_mass(&self) -> f64 {
        self.pa + self.b
    }

    /// d(ρ) = (Q_B − B/ρ)/Σq = Σ max(0, q − p/ρ)/Σq, clamped to [0, 1] against rounding.
    #[inline]
    pub fn miss(&self, rho: f64) -> f64 {
        clamp01((self.qb - self.b / rho) / (self.a + self.qb))
    }

    /// e(ρ) = (P_A − ρA)/Σp = Σ max(0, p − ρq)/Σp, clamped to [0, 1] against rounding.
    #[inline]
    pub fn excess(&self, rho: f64) -> f64 {
        clamp01((self.pa - rho * self.a) / self.p_mass())
    }
}

/// x clamped to [0, 1].
#[inline]
pub fn clamp01(x: f64) -> f64 {
    if x > 0.0 {
        if x < 1.0 {
            x
        } else {
            1.0
        }
    } else {
        0.0
    }
}

/// f(ρ) = e(ρ) − d(ρ)^k (= 1 − (1 − β)^k − ρβ for rows summing to 1): positive left of ρ*. e and d
/// are normalised by Σp and Σq, so rows whose sums are not exactly 1 (float32 rounding, scaled
/// weights) solve like the normalised rows, and p = q gives 0 − 0, disjoint supports 1 − 1^k.
#[inline]
pub fn gap(s: &Sides, rho: f64, k: u32) -> f64 {
    s.excess(rho) - powi(s.miss(rho), k)
}

/// The acceptance probability 1 − d^k given β and d (0 when β = 0: nothing can be accepted).
#[inline]
pub fn acceptance(beta: f64, miss: f64, k: u32) -> f64 {
    if beta > 0.0 {
        1.0 - powi(miss, k)
    } else {
        0.0
    }
}

/// The first index of a probability row that is negative, NaN or +∞ (for error reports).
pub fn first_bad(x: &[f32]) -> usize {
    x.iter().position(|&e| !(e >= 0.0) || e == f32::INFINITY).unwrap_or(0)
}

/// Checks a row from its min / max (as found by a pass): `Err` with the report if invalid.
pub fn check_row(x: &[f32], min: f32, max: f32, row: u32) -> Result<(), RowError> {
    if !(min >= 0.0) || max == f32::INFINITY || max != max {
        return Err(RowError::Bad { row, index: first_bad(x) });
    }
    if !(max > 0.0) {
        return Err(RowError::Zero { row });
    }
    Ok(())
}

/// Solves ρ* for rows p·sp and q·sq (raw f32 rows with scale factors; pass 1.0 for plain rows),
/// validating both rows in the same pass. `list` needs room for `p.len()` entries.
pub fn solve(p: &[f32], q: &[f32], sp: f64, sq: f64, k: u32, list: &mut [Entry]) -> Result<Rho, RowError> {
    let n = p.len().min(q.len());
    let (p, q) = (&p[..n], &q[..n]);
    let kf = k as f64;
    let mut m = 0usize;
    let (mut list_p, mut list_q) = (0.0f64, 0.0f64);
    let mut extra = Sides::default();
    // Histogram of the listed ratios by the top bits of their f64 representation (monotone in r,
    // so every bucket is an exact ratio interval [lower_j, lower_{j+1})): Σp and Σq per bucket.
    let nb = bucket(kf) + 1;
    let mut hist_p = [0.0f64; MAX_BUCKETS];
    let mut hist_q = [0.0f64; MAX_BUCKETS];
    let c = simd::classify(p, q, sp as f32, sq as f32, k as f32, |i| {
        let (x, y) = (p[i], q[i]);
        let r = (x as f64 * sp) / (y as f64 * sq);
        // The f32 classification may disagree with the f64 ratio at the edges: settle those here.
        if r <= 1.0 {
            extra.b += x as f64;
            extra.qb += y as f64;
        } else if r >= kf {
            extra.a += y as f64;
            extra.pa += x as f64;
        } else {
            let j = bucket(r);
            hist_p[j] += x as f64;
            hist_q[j] += y as f64;
            list[m] = Entry { r, p: x, q: y };
            list_p += x as f64;
            list_q += y as f64;
            m += 1;
        }
    });
    check_row(p, c.p_min, c.p_max, 0)?;
    check_row(q, c.q_min, c.q_max, 1)?;
    let mut s = Sides {
        a: (c.a + extra.a) * sq,
        pa: (c.pa + extra.pa) * sp,
        b: (c.b + extra.b) * sp,
        qb: (c.qb + extra.qb) * sq,
    };
    // ρ = 1: every listed token has r > 1, so it counts above.
    let s1 = Sides { a: s.a + list_q * sq, pa: s.pa + list_p * sp, ..s };
    let (rho, at) = if k <= 1 || gap(&s1, 1.0, k) <= 0.0 {
        (1.0, s1)
    } else {
        // The first bucket boundary with f ≤ 0 closes the root's bucket; fold all other buckets.
        let (mut q_above, mut p_above, mut p_below, mut q_below) = (list_q, list_p, 0.0f64, 0.0f64);
        let mut root = nb - 1;
        for j in 1..nb {
            q_above -= hist_q[j - 1];
            p_above -= hist_p[j - 1];
            p_below += hist_p[j - 1];
            q_below += hist_q[j - 1];
            let t = Sides {
                a: s.a + q_above * sq,
                pa: s.pa + p_above * sp,
                b: s.b + p_below * sp,
                qb: s.qb + q_below * sq,
            };
            if gap(&t, lower(j), k) <= 0.0 {
                root = j - 1;
                break;
            }
        }
        let (mut lo, mut hi) = (lower(root).max(1.0), if root + 1 < nb { lower(root + 1).min(kf) } else { kf });
        let q_hi: f64 = hist_q[root + 1..nb].iter().sum();
        let p_hi: f64 = hist_p[root + 1..nb].iter().sum();
        let p_lo: f64 = hist_p[..root].iter().sum();
        let q_lo: f64 = hist_q[..root].iter().sum();
        s.a += q_hi * sq;
        s.pa += p_hi * sp;
        s.b += p_lo * sp;
        s.qb += q_lo * sq;
        let kept = keep_bucket(&mut list[..m], root);
        let (start, mut end) = (0usize, kept);
        while start < end {
            let seg = &mut list[start..end];
            let pivot = median3(seg[0].r, seg[seg.len() / 2].r, seg[seg.len() - 1].r);
            if pivot <= lo {
                // Everything at or below lo counts below for every ρ in (lo, hi].
                let (kept, dp, dq) = keep_above(seg, lo);
                s.b += dp * sp;
                s.qb += dq * sq;
                end = start + kept;
                continue;
            }
            if pivot >= hi {
                let (kept, dp, dq) = keep_below(seg, hi);
                s.a += dq * sq;
                s.pa += dp * sp;
                end = start + kept;
                continue;
            }
            // One read-only pass: masses below / at / above the pivot.
            let (mut p_lt, mut q_lt, mut p_eq, mut q_eq, mut p_gt, mut q_gt) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
            for e in seg.iter() {
                let (x, y) = (e.p as f64, e.q as f64);
                let lt = e.r < pivot;
                let eq = e.r == pivot;
                let gt = e.r > pivot;
                p_lt += if lt { x } else { 0.0 };
                q_lt += if lt { y } else { 0.0 };
                p_eq += if eq { x } else { 0.0 };
                q_eq += if eq { y } else { 0.0 };
                p_gt += if gt { x } else { 0.0 };
                q_gt += if gt { y } else { 0.0 };
            }
            let t = Sides {
                a: s.a + (q_eq + q_gt) * sq,
                pa: s.pa + (p_eq + p_gt) * sp,
                b: s.b + p_lt * sp,
                qb: s.qb + q_lt * sq,
            };
            if gap(&t, pivot, k) <= 0.0 {
                // Root ≤ pivot: ratios ≥ pivot count above from here on.
                hi = pivot;
                s.a = t.a;
                s.pa = t.pa;
                let (kept, _, _) = keep_below(seg, pivot);
                end = start + kept;
            } else {
                // Root > pivot: ratios ≤ pivot count below from here on.
                lo = pivot;
                s.b = t.b + p_eq * sp;
                s.qb = t.qb + q_eq * sq;
                let (kept, _, _) = keep_above(seg, pivot);
                end = start + kept;
            }
        }
        loop {
            let mid = 0.5 * (lo + hi);
            if !(mid > lo && mid < hi) {
                break;
            }
            if gap(&s, mid, k) <= 0.0 {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        (hi, s)
    };
    let beta = at.beta(rho);
    let miss = at.miss(rho);
    Ok(Rho { rho, beta, acceptance: acceptance(beta, miss, k), miss, p_mass: at.p_mass() })
}

/// Histogram resolution: buckets per octave of r is 2^BUCKET_BITS.
const BUCKET_BITS: u32 = 7;
/// Enough buckets for r ∈ [1, 1024] (k ≤ 1024).
const MAX_BUCKETS: usize = (11 << BUCKET_BITS) + 1;

/// The histogram bucket of a ratio r ≥ 1: the top bits of its f64 representation.
#[inline(always)]
fn bucket(r: f64) -> usize {
    let j = (r.to_bits() >> (52 - BUCKET_BITS)) - (1.0f64.to_bits() >> (52 - BUCKET_BITS));
    (j as usize).min(MAX_BUCKETS - 1)
}

/// The smallest ratio in bucket `j`.
#[inline(always)]
fn lower(j: usize) -> f64 {
    f64::from_bits(((j as u64) + (1.0f64.to_bits() >> (52 - BUCKET_BITS))) << (52 - BUCKET_BITS))
}

/// Keeps the entries of bucket `j` at the front; returns how many.
fn keep_bucket(seg: &mut [Entry], j: usize) -> usize {
    let mut kept = 0;
    for i in 0..seg.len() {
        let e = seg[i];
        seg[kept] = e;
        kept += (bucket(e.r) == j) as usize;
    }
    kept
}

fn median3(x: f64, y: f64, z: f64) -> f64 {
    if x < y {
        if y < z {
            y
        } else if x < z {
            z
        } else {
            x
        }
    } else if x < z {
        x
    } else if y < z {
        z
    } else {
        y
    }
}

/// Keeps the entries with r < `bound` at the front (stable filter); returns (kept, Σ p dropped,
/// Σ q dropped).
fn keep_below(seg: &mut [Entry], bound: f64) -> (usize, f64, f64) {
    let mut kept = 0;
    let (mut dp, mut dq) = (0.0, 0.0);
    for i in 0..seg.len() {
        let e = seg[i];
        let keep = e.r < bound;
        seg[kept] = e;
        kept += keep as usize;
        dp += if keep { 0.0 } else { e.p as f64 };
        dq += if keep { 0.0 } else { e.q as f64 };
    }
    (kept, dp, dq)
}

/// Keeps the entries with r > `bound` at the front; returns (kept, Σ p dropped, Σ q dropped).
fn keep_above(seg: &mut [Entry], bound: f64) -> (usize, f64, f64) {
    let mut kept = 0;
    let (mut dp, mut dq) = (0.0, 0.0);
    for i in 0..seg.len() {
        let e = seg[i];
        let keep = e.r > bound;
        seg[kept] = e;
        kept += keep as usize;
        dp += if keep { 0.0 } else { e.p as f64 };
        dq += if keep { 0.0 } else { e.q as f64 };
    }
    (kept, dp, dq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;
    extern crate std;
    use std::vec::Vec;

    /// Σ with Neumaier compensation (the naive solve's sums are as exact as f64 allows).
    fn nsum(it: impl Iterator<Item = f64>) -> f64 {
        let (mut s, mut c) = (0.0f64, 0.0f64);
        for x in it {
            let t = s + x;
            c += if s.abs() >= x.abs() { (s - t) + x } else { (x - t) + s };
            s = t;
        }
        s + c
    }

    /// f(ρ) = e − d^k evaluated directly over every token: e = Σ max(0, p − ρq)/Σp,
    /// d = Σ max(0, q − p/ρ)/Σq.
    fn f_direct(p: &[f32], q: &[f32], rho: f64, k: u32) -> f64 {
        let (sp, sq) = (nsum(p.iter().map(|&x| x as f64)), nsum(q.iter().map(|&x| x as f64)));
        let e = nsum(p.iter().zip(q).map(|(&x, &y)| (x as f64 - rho * y as f64).max(0.0))) / sp;
        let d = nsum(p.iter().zip(q).map(|(&x, &y)| (y as f64 - x as f64 / rho).max(0.0))) / sq;
        e.min(1.0) - powi(d.min(1.0), k)
    }

    /// The reference algorithm in float64: sort every ratio in (1, k) exactly, find the root's
    /// segment by binary search over the breakpoints, bisect inside it, each f evaluated directly
    /// (no prefix sums). Returns (ρ*, β, acceptance).
    fn naive(p: &[f32], q: &[f32], k: u32) -> (f64, f64, f64) {
        let n = p.len();
        let kf = k as f64;
        let mut rho = 1.0;
        if k > 1 && f_direct(p, q, 1.0, k) > 0.0 {
            let mut rs: Vec<f64> = (0..n)
                .filter(|&i| p[i] > 0.0 && q[i] > 0.0)
                .map(|i| p[i] as f64 / q[i] as f64)
                .filter(|&r| r > 1.0 && r < kf)
                .collect();
            rs.sort_by(|x, y| x.partial_cmp(y).unwrap());
            rs.dedup();
            // First breakpoint with f ≤ 0 (f falls in ρ).
            let (mut l, mut h) = (0usize, rs.len());
            while l < h {
                let mid = (l + h) / 2;
                if f_direct(p, q, rs[mid], k) <= 0.0 {
                    h = mid;
                } else {
                    l = mid + 1;
                }
            }
            let mut hi = if l < rs.len() { rs[l] } else { kf };
            let mut lo = if l > 0 { rs[l - 1] } else { 1.0 };
            loop {
                let mid = (lo + hi) / 2.0;
                if mid <= lo || mid >= hi {
                    break;
                }
                if f_direct(p, q, mid, k) <= 0.0 {
                    hi = mid
                } else {
                    lo = mid
                }
            }
            rho = hi;
        }
        let beta = nsum((0..n).map(|i| (q[i] as f64).min(p[i] as f64 / rho)));
        let sq = nsum(q.iter().map(|&x| x as f64));
        let d = (nsum((0..n).map(|i| (q[i] as f64 - p[i] as f64 / rho).max(0.0))) / sq).min(1.0);
        (rho, beta, if beta > 0.0 { 1.0 - powi(d, k) } else { 0.0 })
    }

    fn row(rng: &mut Rng, n: usize, zeros: f64) -> Vec<f32> {
        let mut v: Vec<f32> = (0..n)
            .map(|_| if rng.f64() < zeros { 0.0 } else { (rng.normal() * 2.0).exp() as f32 })
            .collect();
        if v.iter().all(|&x| x == 0.0) {
            v[0] = 1.0;
        }
        let s: f64 = v.iter().map(|&x| x as f64).sum();
        v.iter_mut().for_each(|x| *x = (*x as f64 / s) as f32);
        v
    }

    #[test]
    fn solve_matches_the_sorting_reference() {
        let mut rng = Rng::new(11);
        let mut worst = 0.0f64;
        let mut sizes: Vec<usize> = (1..=17).collect();
        sizes.extend([100, 1000, 5000]);
        for &n in &sizes {
            for t in 0..60 {
                let k = 1 + (t % 8) as u32;
                let p = row(&mut rng, n, 0.2);
                let q = if t % 7 == 0 { p.clone() } else { row(&mut rng, n, 0.2) };
                let mut list = std::vec![Entry::default(); n];
                let got = solve(&p, &q, 1.0, 1.0, k, &mut list).unwrap();
                let (rho, beta, acc) = naive(&p, &q, k);
                let e = ((got.rho - rho) / rho).abs().max(((got.beta - beta) / beta.max(1e-300)).abs());
                assert!((got.acceptance - acc).abs() <= 1e-12, "n={n} k={k} acceptance {} vs {acc}", got.acceptance);
                worst = worst.max(e);
                assert!(e < 1e-9, "n={n} k={k} got {got:?} want rho={rho} beta={beta}");
                assert!(got.rho >= 1.0 && got.rho <= k as f64);
            }
        }
        std::println!("worst relative error {worst:e}");
    }

    #[test]
    fn scaled_rows_solve_like_normalised_rows() {
        let mut rng = Rng::new(12);
        let p = row(&mut rng, 300, 0.1);
        let q = row(&mut rng, 300, 0.1);
        let p3: Vec<f32> = p.iter().map(|x| x * 4.0).collect();
        let mut list = std::vec![Entry::default(); 300];
        let a = solve(&p, &q, 1.0, 1.0, 4, &mut list).unwrap();
        let b = solve(&p3, &q, 0.25, 1.0, 4, &mut list).unwrap();
        assert!(((a.rho - b.rho) / a.rho).abs() < 1e-6);
        assert!(((a.beta - b.beta) / a.beta).abs() < 1e-6);
        assert!((a.acceptance - b.acceptance).abs() < 1e-12 && (a.miss - b.miss).abs() < 1e-12);
        assert!((a.p_mass - b.p_mass).abs() < 1e-12);
    }

    /// Float32 rows as a kernel sees them: normalised in f64, times `scale`, rounded to f32.
    fn f32_row(rng: &mut Rng, n: usize, scale: f64) -> Vec<f32> {
        let v: Vec<f64> = (0..n).map(|_| if rng.f64() < 0.1 { 0.0 } else { (rng.normal() * 2.0).exp() }).collect();
        let s: f64 = v.iter().sum::<f64>().max(1e-300);
        let mut out: Vec<f32> = v.iter().map(|&x| (x / s * scale) as f32).collect();
        if out.iter().all(|&x| x == 0.0) {
            out[0] = scale as f32;
        }
        out
    }

    const SIZES: [usize; 6] = [1, 2, 7, 100, 5000, 50_000];
    /// Sums below 1 made the old f = 1 − (1 − β)^k − ρβ give ρ* ≈ 1 + (1 − Σq)^{1/k} for p = q.
    const SCALES: [f64; 4] = [1.0, 1.0 - 3e-7, 1.0 + 3e-7, 1.0 - 1e-6];

    #[test]
    fn identical_f32_rows_give_rho_one_and_acceptance_one() {
        let mut rng = Rng::new(21);
        let mut off_one = 0;
        for &n in &SIZES {
            for &scale in &SCALES {
                for _ in 0..2 {
                    let p = f32_row(&mut rng, n, scale);
                    let sum: f64 = p.iter().map(|&x| x as f64).sum();
                    off_one += (sum != 1.0) as usize;
                    let mut list = std::vec![Entry::default(); n];
                    for k in 2..=8u32 {
                        let got = solve(&p, &p, 1.0, 1.0, k, &mut list).unwrap();
                        assert_eq!(got.rho, 1.0, "n={n} k={k} Σ={sum}: {got:?}");
                        assert!((got.acceptance - 1.0).abs() <= 1e-12, "n={n} k={k} Σ={sum}: {got:?}");
                        assert_eq!(got.miss, 0.0);
                        assert!((got.beta - sum).abs() <= 1e-12);
                        assert_eq!(got.p_mass, got.beta); // so the residual factor is exactly 1
                        // The same row as scaled weights (a kseq_step warps into p·(1/Σ)).
                        let w: Vec<f32> = p.iter().map(|&x| x * 8.0).collect();
                        let s = 1.0 / (8.0 * sum);
                        let got = solve(&w, &w, s, s, k, &mut list).unwrap();
                        assert_eq!(got.rho, 1.0, "scaled n={n} k={k}: {got:?}");
                        assert!((got.acceptance - 1.0).abs() <= 1e-12);
                    }
                }
            }
        }
        assert!(off_one >= SIZES.len() * 6, "only {off_one} rows with Σ ≠ 1");
    }

    #[test]
    fn disjoint_f32_rows_with_unequal_sums_give_rho_one_and_acceptance_zero() {
        let mut rng = Rng::new(23);
        for &n in &SIZES[1..] {
            for (&sp, &sq) in SCALES.iter().zip(SCALES.iter().rev()) {
                let mut p = f32_row(&mut rng, n, sp);
                let mut q = f32_row(&mut rng, n, sq);
                for i in 0..n {
                    if i % 2 == 0 {
                        p[i] = 0.0;
                    } else {
                        q[i] = 0.0;
                    }
                }
                if p.iter().all(|&x| x == 0.0) || q.iter().all(|&x| x == 0.0) {
                    continue;
                }
                let mut list = std::vec![Entry::default(); n];
                for k in 1..=8u32 {
                    let got = solve(&p, &q, 1.0, 1.0, k, &mut list).unwrap();
                    assert_eq!((got.rho, got.beta, got.acceptance, got.miss), (1.0, 0.0, 0.0, 1.0), "n={n} k={k}");
                }
            }
        }
    }

    #[test]
    fn near_identical_rows_match_the_naive_solve() {
        // q = p·(1 + 1e-7·u), u uniform in [−1, 1]: β ≈ 1 − 1e-8, where the old f cancelled.
        // Tolerance: |Δρ*| ≤ 1e-12 (the slope of f is about −Σ_{r ≥ ρ} q, so this is f to ~1e-13).
        let mut rng = Rng::new(22);
        let mut worst = 0.0f64;
        let mut above_one = 0;
        for &n in &SIZES[2..] {
            for &scale in &SCALES {
                let p = f32_row(&mut rng, n, scale);
                let q: Vec<f32> = p.iter().map(|&x| (x as f64 * (1.0 + 1e-7 * (2.0 * rng.f64() - 1.0))) as f32).collect();
                let mut list = std::vec![Entry::default(); n];
                for k in 2..=8u32 {
                    let got = solve(&p, &q, 1.0, 1.0, k, &mut list).unwrap();
                    let (rho, beta, acc) = naive(&p, &q, k);
                    let e = (got.rho - rho).abs();
                    worst = worst.max(e);
                    above_one += (rho > 1.0) as usize;
                    assert!(e <= 1e-12, "n={n} k={k} scale={scale}: rho {} vs naive {rho}", got.rho);
                    assert!((got.beta - beta).abs() <= 1e-12, "beta {} vs {beta}", got.beta);
                    assert!((got.acceptance - acc).abs() <= 1e-12, "acceptance {} vs {acc}", got.acceptance);
                    assert!(got.acceptance > 1.0 - 1e-9);
                }
            }
        }
        assert!(above_one > 0);
        std::println!("near-identical rows: worst |rho - naive| {worst:e}");
    }

    #[test]
    fn bad_rows_are_reported_p_first() {
        let mut list = std::vec![Entry::default(); 3];
        let ok = [0.5f32, 0.5, 0.0];
        let e = solve(&[0.5, f32::NAN, -1.0], &[0.1, -1.0, 0.0], 1.0, 1.0, 2, &mut list);
        assert_eq!(e, Err(RowError::Bad { row: 0, index: 1 }));
        let e = solve(&ok, &[0.1, 0.2, f32::INFINITY], 1.0, 1.0, 2, &mut list);
        assert_eq!(e, Err(RowError::Bad { row: 1, index: 2 }));
        let e = solve(&[0.0; 3], &[0.0; 3], 1.0, 1.0, 2, &mut list);
        assert_eq!(e, Err(RowError::Zero { row: 0 }));
        let e = solve(&ok, &[0.0; 3], 1.0, 1.0, 2, &mut list);
        assert_eq!(e, Err(RowError::Zero { row: 1 }));
    }

    #[test]
    fn powi_matches_repeated_multiplication() {
        for k in 0..40u32 {
            let x = 0.937f64;
            let want = (0..k).fold(1.0, |a, _| a * x);
            assert!((powi(x, k) - want).abs() <= 1e-14);
        }
    }
}
