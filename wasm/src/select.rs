//! O(V) thresholds for top-k and top-p by selection over a scratch copy (no full sort).

/// A token for top-p selection: its logit (the order key) and its unnormalised weight.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pair {
    /// Logit (any strictly increasing function of the probability orders the same way).
    pub key: f32,
    /// Unnormalised probability.
    pub w: f32,
}

/// The `k`-th largest value of `x` (1-based, duplicates counted), by quickselect with a
/// three-way partition, reordering `x` (a scratch copy). `k` must be in 1..=x.len().
pub fn kth_largest(x: &mut [f32], k: usize) -> f32 {
    let (mut lo, mut hi) = (0usize, x.len());
    let mut want = k - 1; // rank from the top within x[lo..hi]
    loop {
        let seg = &mut x[lo..hi];
        let n = seg.len();
        if n == 1 {
            return seg[0];
        }
        let pivot = median3(seg[0], seg[n / 2], seg[n - 1]);
        // Dutch flag, descending: [> pivot][== pivot][< pivot].
        let (mut gt, mut i, mut lt) = (0usize, 0usize, n);
        while i < lt {
            let e = seg[i];
            if e > pivot {
                seg.swap(gt, i);
                gt += 1;
                i += 1;
            } else if e < pivot {
                lt -= 1;
                seg.swap(i, lt);
            } else {
                i += 1;
            }
        }
        if want < gt {
            hi = lo + gt;
        } else if want < lt {
            return pivot;
        } else {
            want -= lt;
            lo += lt;
        }
    }
}

/// Top-p threshold: the largest key t with Σ_{key ≥ t} w ≥ `target`, or `None` when even the
/// full mass stays below `target` (rounding: then every token is kept). Reorders `pairs`.
pub fn top_p_threshold(pairs: &mut [Pair], target: f64) -> Option<f32> {
    let mut above = 0.0f64; // mass of keys above the current range
    let (start, mut end) = (0usize, pairs.len());
    while start < end {
        let seg = &mut pairs[start..end];
        let n = seg.len();
        let pivot = median3(seg[0].key, seg[n / 2].key, seg[n - 1].key);
        let (mut gt, mut eq) = (0.0f64, 0.0f64);
        for e in seg.iter() {
            let w = e.w as f64;
            gt += if e.key > pivot { w } else { 0.0 };
            eq += if e.key == pivot { w } else { 0.0 };
        }
        if above + gt >= target {
            end = start + filter(seg, |k| k > pivot);
        } else if above + gt + eq >= target {
            return Some(pivot);
        } else {
            above += gt + eq;
            end = start + filter(seg, |k| k < pivot);
        }
    }
    None
}

fn filter(seg: &mut [Pair], keep: impl Fn(f32) -> bool) -> usize {
    let mut kept = 0;
    for i in 0..seg.len() {
        let e = seg[i];
        seg[kept] = e;
        kept += keep(e.key) as usize;
    }
    kept
}

fn median3(x: f32, y: f32, z: f32) -> f32 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn kth_largest_matches_sorting() {
        let mut rng = Rng::new(21);
        let mut sizes: Vec<usize> = (1..=17).collect();
        sizes.extend([100, 1000, 4097]);
        for &n in &sizes {
            for t in 0..30 {
                let x: Vec<f32> = (0..n)
                    .map(|_| {
                        let u = rng.f64();
                        if u < 0.1 {
                            f32::NEG_INFINITY
                        } else if t % 3 == 0 {
                            (rng.below(4)) as f32
                        } else {
                            rng.normal() as f32
                        }
                    })
                    .collect();
                let mut sorted = x.clone();
                sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
                let k = 1 + rng.below(n);
                let mut s = x.clone();
                assert_eq!(kth_largest(&mut s, k), sorted[k - 1]);
            }
        }
    }

    #[test]
    fn top_p_threshold_matches_sorted_cumulation() {
        let mut rng = Rng::new(22);
        let mut sizes: Vec<usize> = (1..=17).collect();
        sizes.extend([100, 1000, 4097]);
        for &n in &sizes {
            for t in 0..30 {
                let key: Vec<f32> =
                    (0..n).map(|_| if t % 3 == 0 { rng.below(5) as f32 } else { (rng.normal() * 2.0) as f32 }).collect();
                let w: Vec<f32> = key.iter().map(|&k| (k as f64).exp() as f32).collect();
                let total: f64 = w.iter().map(|&x| x as f64).sum();
                let p = rng.f64() * 0.98 + 0.01;
                // naive: sort descending, cumulate, threshold = key where the mass reaches p.
                let mut ids: Vec<usize> = (0..n).collect();
                ids.sort_by(|&a, &b| key[b].partial_cmp(&key[a]).unwrap());
                let mut want = None;
                let mut i = 0;
                let mut cum = 0.0;
                while i < n {
                    let kk = key[ids[i]];
                    while i < n && key[ids[i]] == kk {
                        cum += w[ids[i]] as f64;
                        i += 1;
                    }
                    if cum >= p * total {
                        want = Some(kk);
                        break;
                    }
                }
                let mut pairs: Vec<Pair> = (0..n).map(|i| Pair { key: key[i], w: w[i] }).collect();
                assert_eq!(top_p_threshold(&mut pairs, p * total), want, "n={n} p={p}");
            }
        }
    }
}
