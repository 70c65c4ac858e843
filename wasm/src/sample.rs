//! Inverse-CDF draws (smallest id whose cumulative weight exceeds u·total; zero-weight ids are
//! never drawn; if rounding runs past the end, the last id with weight > 0), walked over per-block
//! sums so that a draw costs one summing pass plus O(V/BLOCK + BLOCK), not a full scalar walk.

use crate::error::{check_uniforms, Error};
use crate::rho::check_row;
use crate::simd::{self, BLOCK};

/// A forward walk over block sums; successive targets must not decrease.
pub struct Cursor<'a> {
    blocks: &'a [f64],
    n: usize,
    block: usize,
    before: f64,
}

impl<'a> Cursor<'a> {
    /// A walk over `n` weights whose per-[`BLOCK`] sums are `blocks`.
    pub fn new(n: usize, blocks: &'a [f64]) -> Self {
        Cursor { blocks: &blocks[..(n + BLOCK - 1) / BLOCK], n, block: 0, before: 0.0 }
    }

    /// The smallest id whose cumulative weight exceeds `target` (see the module docs), `None` if
    /// no weight is positive.
    pub fn find(&mut self, target: f64, w: impl Fn(usize) -> f64) -> Option<usize> {
        while self.block < self.blocks.len() {
            let b = self.blocks[self.block];
            if self.before + b > target {
                let lo = self.block * BLOCK;
                let hi = (lo + BLOCK).min(self.n);
                let mut c = self.before;
                for i in lo..hi {
                    let x = w(i);
                    if x > 0.0 {
                        c += x;
                        if c > target {
                            return Some(i);
                        }
                    }
                }
            }
            self.before += b;
            self.block += 1;
        }
        (0..self.n).rev().find(|&i| w(i) > 0.0)
    }
}

/// One inverse-CDF draw with `u` over weights `w` with block sums `blocks` and total `total`.
pub fn draw(n: usize, blocks: &[f64], total: f64, u: f64, w: impl Fn(usize) -> f64) -> Option<usize> {
    Cursor::new(n, blocks).find(u * total, w)
}

/// Draws `ids.len()` ids from `probs` by inverse CDF with `uniforms`, i.i.d. (one walk over the
/// sorted uniforms) or without replacement (drawn ids zeroed in place and restored before
/// returning). Scratch: `blocks` ⌈n/BLOCK⌉ f64, `order` and `saved` `uniforms.len()` each.
pub fn sample(
    probs: &mut [f32],
    uniforms: &[f64],
    without_replacement: bool,
    ids: &mut [i32],
    blocks: &mut [f64],
    order: &mut [u32],
    saved: &mut [f32],
) -> Result<(), Error> {
    let n = probs.len();
    if n == 0 {
        return Err(Error::Empty);
    }
    let st = simd::stats(probs);
    check_row(probs, st.min, st.max, 0)?;
    check_uniforms(uniforms)?;
    let count = uniforms.len();
    if !without_replacement {
        let total = simd::blocks_f32(probs, blocks);
        let order = &mut order[..count];
        for (i, o) in order.iter_mut().enumerate() {
            *o = i as u32;
        }
        heap_sort_by(order, |&a, &b| uniforms[a as usize] < uniforms[b as usize]);
        let probs = &*probs;
        let mut cursor = Cursor::new(n, blocks);
        for &o in order.iter() {
            let id = cursor.find(uniforms[o as usize] * total, |i| probs[i] as f64);
            ids[o as usize] = id.map_or(-1, |x| x as i32);
        }
        return Ok(());
    }
    let mut drawn = 0;
    let mut result = Ok(());
    while drawn < count {
        let total = simd::blocks_f32(probs, blocks);
        let p = &*probs;
        match draw(n, blocks, total, uniforms[drawn], |i| p[i] as f64) {
            Some(id) => {
                ids[drawn] = id as i32;
                saved[drawn] = probs[id];
                probs[id] = 0.0;
                drawn += 1;
            }
            None => {
                result = Err(Error::TooFew { drawn });
                break;
            }
        }
    }
    for j in (0..drawn).rev() {
        probs[ids[j] as usize] = saved[j];
    }
    result
}

/// In-place heap sort with a strict "less" predicate (no allocation, O(c log c)).
pub fn heap_sort_by<T: Copy>(x: &mut [T], less: impl Fn(&T, &T) -> bool) {
    let n = x.len();
    let sift = |x: &mut [T], mut root: usize, end: usize| loop {
        let mut child = 2 * root + 1;
        if child >= end {
            break;
        }
        if child + 1 < end && less(&x[child], &x[child + 1]) {
            child += 1;
        }
        if less(&x[root], &x[child]) {
            x.swap(root, child);
            root = child;
        } else {
            break;
        }
    };
    for i in (0..n / 2).rev() {
        sift(x, i, n);
    }
    for end in (1..n).rev() {
        x.swap(0, end);
        sift(x, 0, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;
    extern crate std;
    use std::vec::Vec;

    fn naive(w: &[f64], u: f64) -> i32 {
        let total: f64 = w.iter().sum();
        let t = u * total;
        let (mut c, mut last) = (0.0, -1);
        for (i, &x) in w.iter().enumerate() {
            if x <= 0.0 {
                continue;
            }
            c += x;
            last = i as i32;
            if c > t {
                return i as i32;
            }
        }
        last
    }

    #[test]
    fn sample_matches_a_sequential_walk() {
        let mut rng = Rng::new(41);
        let mut sizes: Vec<usize> = (1..=17).collect();
        sizes.extend([63, 64, 65, 129, 1000, 5000]);
        for &n in &sizes {
            for t in 0..20 {
                let mut p: Vec<f32> = (0..n).map(|_| if rng.f64() < 0.3 { 0.0 } else { rng.f64() as f32 }).collect();
                if p.iter().all(|&x| x == 0.0) {
                    p[n - 1] = 0.5;
                }
                let wor = t % 2 == 1;
                let positive = p.iter().filter(|&&x| x > 0.0).count();
                let count = if wor { 1 + rng.below(positive.min(6)) } else { 1 + rng.below(9) };
                let us: Vec<f64> = (0..count).map(|_| rng.f64()).collect();
                let mut ids = std::vec![0i32; count];
                let mut blocks = std::vec![0.0; n / BLOCK + 1];
                let mut order = std::vec![0u32; count];
                let mut saved = std::vec![0.0f32; count];
                let before = p.clone();
                sample(&mut p, &us, wor, &mut ids, &mut blocks, &mut order, &mut saved).unwrap();
                assert_eq!(p, before, "restored");
                let mut w: Vec<f64> = p.iter().map(|&x| x as f64).collect();
                for (i, &u) in us.iter().enumerate() {
                    let want = naive(&w, u);
                    assert_eq!(ids[i], want, "n={n} draw {i}");
                    if wor {
                        w[want as usize] = 0.0;
                    }
                }
            }
        }
    }

    #[test]
    fn too_many_distinct_draws_fail_with_the_count() {
        let mut p = [0.5f32, 0.0, 0.5];
        let (mut ids, mut b, mut o, mut s) = ([0i32; 3], [0.0f64; 1], [0u32; 3], [0.0f32; 3]);
        let e = sample(&mut p, &[0.1, 0.2, 0.3], true, &mut ids, &mut b, &mut o, &mut s);
        assert_eq!(e, Err(Error::TooFew { drawn: 2 }));
        assert_eq!(p, [0.5, 0.0, 0.5]);
    }

    #[test]
    fn heap_sort_sorts() {
        let mut rng = Rng::new(42);
        for n in 0..40 {
            let mut x: Vec<u32> = (0..n).map(|_| rng.below(10) as u32).collect();
            let mut y = x.clone();
            heap_sort_by(&mut x, |a, b| a < b);
            y.sort();
            assert_eq!(x, y);
        }
    }
}
