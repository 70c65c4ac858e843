//! Logits → warped weights: temperature → top-k → softmax (max-subtracted) → top-p, as the
//! reference `warpReference`. Weights are left unnormalised; the caller gets their sum and carries
//! 1/sum as a scale factor (or normalises with [`crate::simd::scale`]).

use crate::error::Error;
use crate::select::{kth_largest, top_p_threshold, Pair};
use crate::simd;

/// Warp options (validated by [`Options::check`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// Softmax temperature; 0 = greedy one-hot at the first argmax.
    pub temperature: f64,
    /// Keep logits ≥ the k-th largest; 0 disables.
    pub top_k: u32,
    /// Nucleus mass in (0, 1]; 1 disables.
    pub top_p: f64,
}

impl Options {
    /// Checks temperature (finite, ≥ 0) and top-p ∈ (0, 1].
    pub fn check(&self) -> Result<(), Error> {
        if !(self.temperature >= 0.0 && self.temperature < f64::INFINITY) {
            return Err(Error::Temperature);
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::TopP);
        }
        Ok(())
    }
}

/// Scratch for [`warp`]: a copy of the logits for top-k and (key, weight) pairs for top-p.
pub struct Scratch<'a> {
    /// `n` f32 for the top-k selection.
    pub keys: &'a mut [f32],
    /// `n` pairs for the top-p selection.
    pub pairs: &'a mut [Pair],
}

/// Validates a logit row in one max pass; returns the max.
pub fn check_logits(logits: &[f32], row: u32) -> Result<f32, Error> {
    if logits.is_empty() {
        return Err(Error::Empty);
    }
    let m = simd::max(logits);
    if m != m || m == f32::INFINITY {
        let index = logits.iter().position(|&e| e != e || e == f32::INFINITY).unwrap_or(0);
        return Err(if logits[index] != logits[index] {
            Error::NanLogit { row, index }
        } else {
            Error::PosInfLogit { row, index }
        });
    }
    if m == f32::NEG_INFINITY {
        return Err(Error::AllMasked { row });
    }
    Ok(m)
}

/// Warps `logits` into unnormalised weights `dst`; returns their f64 sum (> 0).
pub fn warp(logits: &[f32], dst: &mut [f32], opt: &Options, row: u32, s: Scratch<'_>) -> Result<f64, Error> {
    opt.check()?;
    let n = logits.len();
    let dst = &mut dst[..n];
    let m = check_logits(logits, row)?;
    if opt.temperature == 0.0 {
        let best = logits.iter().position(|&e| e == m).unwrap_or(0);
        dst.iter_mut().for_each(|e| *e = 0.0);
        dst[best] = 1.0;
        return Ok(1.0);
    }
    let top_k = opt.top_k as usize;
    let keep_from = if top_k > 0 && top_k < n {
        let keys = &mut s.keys[..n];
        keys.copy_from_slice(logits);
        kth_largest(keys, top_k)
    } else {
        f32::NEG_INFINITY
    };
    let inv_t = (1.0 / opt.temperature) as f32;
    let inv_t = if inv_t < f32::INFINITY { inv_t } else { f32::MAX };
    let mut sum = simd::exp_store_sum(logits, dst, m, inv_t, keep_from);
    if opt.top_p < 1.0 {
        let mut count = 0;
        for (i, &w) in dst.iter().enumerate() {
            s.pairs[count] = Pair { key: logits[i], w };
            count += (w > 0.0) as usize;
        }
        if let Some(t) = top_p_threshold(&mut s.pairs[..count], opt.top_p * sum) {
            sum = simd::keep_from(logits, dst, t);
        }
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;
    extern crate std;
    use std::vec::Vec;

    /// The reference's algorithm in f64 with a full sort.
    fn naive(l: &[f32], t: f64, top_k: usize, top_p: f64) -> Vec<f64> {
        let n = l.len();
        let mut out = std::vec![0.0; n];
        if t == 0.0 {
            let mut best = 0;
            for i in 1..n {
                if l[i] > l[best] {
                    best = i;
                }
            }
            out[best] = 1.0;
            return out;
        }
        let mut z: Vec<f64> = l.iter().map(|&x| x as f64 / t).collect();
        if top_k > 0 && top_k < n {
            let mut s = z.clone();
            s.sort_by(|a, b| b.partial_cmp(a).unwrap());
            let th = s[top_k - 1];
            z.iter_mut().for_each(|x| {
                if *x < th {
                    *x = f64::NEG_INFINITY
                }
            });
        }
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for i in 0..n {
            out[i] = (z[i] - m).exp();
            sum += out[i];
        }
        out.iter_mut().for_each(|x| *x /= sum);
        if top_p < 1.0 {
            let mut s = out.clone();
            s.sort_by(|a, b| b.partial_cmp(a).unwrap());
            let (mut c, mut th) = (0.0, 0.0);
            for v in s {
                c += v;
                if c >= top_p {
                    th = v;
                    break;
                }
            }
            let mut kept = 0.0;
            for x in out.iter_mut() {
                if *x < th {
                    *x = 0.0
                }
                kept += *x;
            }
            out.iter_mut().for_each(|x| *x /= kept);
        }
        out
    }

    #[test]
    fn warp_matches_the_reference_algorithm() {
        let mut rng = Rng::new(31);
        let mut sizes: Vec<usize> = (1..=17).collect();
        sizes.extend([100, 1000, 3001]);
        for &n in &sizes {
            for c in 0..24 {
                let mut l: Vec<f32> = (0..n)
                    .map(|_| if c % 4 == 3 { rng.below(3) as f32 } else { (rng.normal() * 3.0) as f32 })
                    .collect();
                if c % 5 == 1 {
                    for _ in 0..n / 3 {
                        let i = rng.below(n);
                        l[i] = f32::NEG_INFINITY;
                    }
                }
                if l.iter().all(|&x| x == f32::NEG_INFINITY) {
                    l[0] = 0.0;
                }
                let t = [1.0, 0.0, 0.7, 2.0][c % 4];
                let top_k = if c % 3 == 0 { 1 + rng.below(n) } else { 0 };
                let top_p = if c % 2 == 0 { 0.05 + 0.9 * rng.f64() } else { 1.0 };
                let opt = Options { temperature: t, top_k: top_k as u32, top_p };
                let mut dst = std::vec![0.0f32; n];
                let mut keys = std::vec![0.0f32; n];
                let mut pairs = std::vec![Pair::default(); n];
                let s = warp(&l, &mut dst, &opt, 0, Scratch { keys: &mut keys, pairs: &mut pairs }).unwrap();
                let want = naive(&l, t, top_k, top_p);
                for i in 0..n {
                    let got = dst[i] as f64 / s;
                    assert!((got - want[i]).abs() <= 1e-6, "n={n} c={c} i={i} got {got} want {}", want[i]);
                }
            }
        }
    }

    #[test]
    fn bad_logits_are_reported_at_the_first_offender() {
        let mut d = [0.0f32; 4];
        let mut k = [0.0f32; 4];
        let mut p = [Pair::default(); 4];
        let opt = Options { temperature: 1.0, top_k: 0, top_p: 1.0 };
        let mut run = |l: &[f32]| warp(l, &mut d, &opt, 1, Scratch { keys: &mut k, pairs: &mut p });
        assert_eq!(run(&[0.0, f32::INFINITY, f32::NAN, 1.0]), Err(Error::PosInfLogit { row: 1, index: 1 }));
        assert_eq!(run(&[0.0, f32::NAN, f32::INFINITY, 1.0]), Err(Error::NanLogit { row: 1, index: 1 }));
        assert_eq!(run(&[f32::NEG_INFINITY; 4]), Err(Error::AllMasked { row: 1 }));
        let bad = Options { temperature: -1.0, top_k: 0, top_p: 1.0 };
        assert_eq!(bad.check(), Err(Error::Temperature));
        let bad = Options { temperature: 1.0, top_k: 0, top_p: 0.0 };
        assert_eq!(bad.check(), Err(Error::TopP));
    }
}
