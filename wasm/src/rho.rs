//! Exact ρ* for K-SEQ without sorting.
//!
//! With r = p/q, β(ρ) = A + B/ρ where A = Σ_{r ≥ ρ} q and B = Σ_{r < ρ} p. ρ* is the smallest ρ in
//! [1, k] with f(ρ) = 1 − (1 − β(ρ))^k − ρβ(ρ) ≤ 0 (f falls in ρ). One pass classifies every token
//! (r ≥ k → A, r ≤ 1 → B, else into a compact list); a quickselect-style search then halves the
//! list around pivot ratios, folding the side that cannot hold the root into A or B, until the
//! root's segment [lo, hi] (A, B constant) is known; bisection inside it to float64 resolution
//! gives ρ* = hi (so f(ρ*) ≤ 0 holds). Expected O(V) in total.

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

/// ρ*, β(ρ*) and the acceptance probability 1 − (1 − β)^k.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rho {
    /// ρ*.
    pub rho: f64,
    /// β(ρ*) = Σ min(q, p/ρ*) over the whole row.
    pub beta: f64,
    /// 1 − (1 − β)^k.
    pub acceptance: f64,
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

/// f(ρ) = 1 − (1 − β)^k − ρβ with β = a + b/ρ.
#[inline]
pub fn gap(a: f64, b: f64, rho: f64, k: u32) -> f64 {
    let beta = a + b / rho;
    1.0 - powi(1.0 - beta, k) - rho * beta
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
    let mut list_q = 0.0f64;
    let (mut a_extra, mut b_extra) = (0.0f64, 0.0f64);
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
            b_extra += x as f64;
        } else if r >= kf {
            a_extra += y as f64;
        } else {
            let j = bucket(r);
            hist_p[j] += x as f64;
            hist_q[j] += y as f64;
            list[m] = Entry { r, p: x, q: y };
            list_q += y as f64;
            m += 1;
        }
    });
    check_row(p, c.p_min, c.p_max, 0)?;
    check_row(q, c.q_min, c.q_max, 1)?;
    let mut a = (c.a + a_extra) * sq;
    let mut b = (c.b + b_extra) * sp;
    // ρ = 1: every listed token has r > 1, so its q counts in A.
    let a1 = a + list_q * sq;
    let rho = if k <= 1 || gap(a1, b, 1.0, k) <= 0.0 {
        1.0
    } else {
        // The first bucket boundary with f ≤ 0 closes the root's bucket; fold all other buckets.
        let (mut q_above, mut p_below) = (list_q, 0.0f64);
        let mut root = nb - 1;
        for j in 1..nb {
            q_above -= hist_q[j - 1];
            p_below += hist_p[j - 1];
            if gap(a + q_above * sq, b + p_below * sp, lower(j), k) <= 0.0 {
                root = j - 1;
                break;
            }
        }
        let (mut lo, mut hi) = (lower(root).max(1.0), if root + 1 < nb { lower(root + 1).min(kf) } else { kf });
        let q_hi: f64 = hist_q[root + 1..nb].iter().sum();
        let p_lo: f64 = hist_p[..root].iter().sum();
        a += q_hi * sq;
        b += p_lo * sp;
        let (kept, _) = keep_bucket(&mut list[..m], root);
        let (start, mut end) = (0usize, kept);
        while start < end {
            let seg = &mut list[start..end];
            let pivot = median3(seg[0].r, seg[seg.len() / 2].r, seg[seg.len() - 1].r);
            if pivot <= lo {
                // Everything at or below lo counts in B for every ρ in (lo, hi].
                let (kept, pl) = keep_above(seg, lo);
                b += pl * sp;
                end = start + kept;
                continue;
            }
            if pivot >= hi {
                let (kept, qh) = keep_below(seg, hi);
                a += qh * sq;
                end = start + kept;
                continue;
            }
            // One read-only pass: masses below / at / above the pivot.
            let (mut p_lt, mut p_eq, mut q_eq, mut q_gt) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
            for e in seg.iter() {
                let (x, y) = (e.p as f64, e.q as f64);
                let lt = e.r < pivot;
                let eq = e.r == pivot;
                p_lt += if lt { x } else { 0.0 };
                p_eq += if eq { x } else { 0.0 };
                q_eq += if eq { y } else { 0.0 };
                q_gt += if e.r > pivot { y } else { 0.0 };
            }
            let a_at = a + (q_eq + q_gt) * sq;
            let b_at = b + p_lt * sp;
            if gap(a_at, b_at, pivot, k) <= 0.0 {
                // Root ≤ pivot: ratios ≥ pivot count in A from here on.
                hi = pivot;
                a = a_at;
                let (kept, _) = keep_below(seg, pivot);
                end = start + kept;
            } else {
                // Root > pivot: ratios ≤ pivot count in B from here on.
                lo = pivot;
                b = b_at + p_eq * sp;
                let (kept, _) = keep_above(seg, pivot);
                end = start + kept;
            }
        }
        loop {
            let mid = 0.5 * (lo + hi);
            if !(mid > lo && mid < hi) {
                break;
            }
            if gap(a, b, mid, k) <= 0.0 {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    };
    let beta = if rho == 1.0 { a1 + b } else { a + b / rho };
    Ok(Rho { rho, beta, acceptance: 1.0 - powi(1.0 - beta, k) })
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

/// Keeps the entries of bucket `j` at the front; returns (kept, 0).
fn keep_bucket(seg: &mut [Entry], j: usize) -> (usize, f64) {
    let mut kept = 0;
    for i in 0..seg.len() {
        let e = seg[i];
        seg[kept] = e;
        kept += (bucket(e.r) == j) as usize;
    }
    (kept, 0.0)
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

/// Keeps the entries with r < `bound` at the front (stable filter); returns (kept, Σ q dropped).
fn keep_below(seg: &mut [Entry], bound: f64) -> (usize, f64) {
    let mut kept = 0;
    let mut dropped = 0.0;
    for i in 0..seg.len() {
        let e = seg[i];
        let keep = e.r < bound;
        seg[kept] = e;
        kept += keep as usize;
        dropped += if keep { 0.0 } else { e.q as f64 };
    }
    (kept, dropped)
}

/// Keeps the entries with r > `bound` at the front; returns (kept, Σ p dropped).
fn keep_above(seg: &mut [Entry], bound: f64) -> (usize, f64) {
    let mut kept = 0;
    let mut dropped = 0.0;
    for i in 0..seg.len() {
        let e = seg[i];
        let keep = e.r > bound;
        seg[kept] = e;
        kept += keep as usize;
        dropped += if keep { 0.0 } else { e.p as f64 };
    }
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;
    extern crate std;
    use std::vec::Vec;

    /// The reference algorithm: sort ratios, walk breakpoints, bisect.
    fn naive(p: &[f32], q: &[f32], k: u32) -> (f64, f64) {
        let n = p.len();
        let mut rho = 1.0;
        if k > 1 {
            let mut ids: Vec<usize> = (0..n).filter(|&i| p[i] > 0.0 && q[i] > 0.0).collect();
            let ratio = |i: usize| p[i] as f64 / q[i] as f64;
            ids.sort_by(|&x, &y| ratio(y).partial_cmp(&ratio(x)).unwrap());
            let m = ids.len();
            let mut q_above = std::vec![0.0; m + 1];
            let mut p_below = std::vec![0.0; m + 1];
            for j in 0..m {
                q_above[j + 1] = q_above[j] + q[ids[j]] as f64;
            }
            for j in (0..m).rev() {
                p_below[j] = p_below[j + 1] + p[ids[j]] as f64;
            }
            let count = |v: f64| (0..m).take_while(|&j| ratio(ids[j]) >= v).count();
            let mut above = count(1.0);
            if gap(q_above[above], p_below[above], 1.0, k) > 0.0 {
                let (mut lo, mut hi) = (1.0, k as f64);
                above = count(k as f64);
                for j in (0..m).rev() {
                    let r = ratio(ids[j]);
                    if r <= 1.0 {
                        continue;
                    }
                    if r >= k as f64 {
                        break;
                    }
                    if gap(q_above[j + 1], p_below[j + 1], r, k) <= 0.0 {
                        hi = r;
                        above = j + 1;
                        break;
                    }
                    lo = r;
                }
                let (a, b) = (q_above[above], p_below[above]);
                loop {
                    let mid = (lo + hi) / 2.0;
                    if mid <= lo || mid >= hi {
                        break;
                    }
                    if gap(a, b, mid, k) <= 0.0 {
                        hi = mid
                    } else {
                        lo = mid
                    }
                }
                rho = hi;
            }
        }
        let beta: f64 = (0..n).map(|i| (q[i] as f64).min(p[i] as f64 / rho)).sum();
        (rho, beta)
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
                let (rho, beta) = naive(&p, &q, k);
                let e = ((got.rho - rho) / rho).abs().max(((got.beta - beta) / beta.max(1e-300)).abs());
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
