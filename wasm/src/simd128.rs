//! The wasm `simd128` implementations behind [`crate::simd`] (4 × f32 / 2 × f64 lanes).
//!
//! `unsafe` is confined to the four load/store helpers at the top; each is reached only with a
//! slice whose length is checked (`chunks_exact`), and `v128_load`/`v128_store` accept unaligned
//! addresses.

use crate::simd::{nan_max, nan_min, residual_weight, Classes, Stats, BLOCK, C1, C2, EXP_LO, LOG2E, P0, P1, P2, P3, P4, P5};
use core::arch::wasm32::*;

#[inline(always)]
fn ld(c: &[f32]) -> v128 {
    assert!(c.len() >= 4);
    // SAFETY: at least 4 f32 (16 bytes) are readable from c's start (checked above);
    // v128_load has no alignment requirement.
    unsafe { v128_load(c.as_ptr() as *const v128) }
}

#[inline(always)]
fn st(c: &mut [f32], v: v128) {
    assert!(c.len() >= 4);
    // SAFETY: at least 4 f32 (16 bytes) are writable from c's start (checked above), and c is a
    // unique borrow; v128_store has no alignment requirement.
    unsafe { v128_store(c.as_mut_ptr() as *mut v128, v) }
}

#[inline(always)]
fn ld64(c: &[f64]) -> v128 {
    assert!(c.len() >= 2);
    // SAFETY: at least 2 f64 (16 bytes) are readable from c's start (checked above).
    unsafe { v128_load(c.as_ptr() as *const v128) }
}

#[inline(always)]
fn st64(c: &mut [f64], v: v128) {
    assert!(c.len() >= 2);
    // SAFETY: at least 2 f64 (16 bytes) are writable from c's start (checked above), unique borrow.
    unsafe { v128_store(c.as_mut_ptr() as *mut v128, v) }
}

#[inline(always)]
fn hmax(v: v128) -> f32 {
    nan_max(
        nan_max(f32x4_extract_lane::<0>(v), f32x4_extract_lane::<1>(v)),
        nan_max(f32x4_extract_lane::<2>(v), f32x4_extract_lane::<3>(v)),
    )
}

#[inline(always)]
fn hmin(v: v128) -> f32 {
    nan_min(
        nan_min(f32x4_extract_lane::<0>(v), f32x4_extract_lane::<1>(v)),
        nan_min(f32x4_extract_lane::<2>(v), f32x4_extract_lane::<3>(v)),
    )
}

#[inline(always)]
fn hsum64(v: v128) -> f64 {
    f64x2_extract_lane::<0>(v) + f64x2_extract_lane::<1>(v)
}

/// f32x4 → (low two as f64x2) + (high two as f64x2), added into `acc`.
#[inline(always)]
fn add_widened(acc: v128, x: v128) -> v128 {
    let lo = f64x2_promote_low_f32x4(x);
    let hi = f64x2_promote_low_f32x4(i32x4_shuffle::<2, 3, 2, 3>(x, x));
    f64x2_add(acc, f64x2_add(lo, hi))
}

/// Four lanes of [`crate::simd::exp_f32`], same operations and order.
#[inline(always)]
pub fn exp4(z: v128) -> v128 {
    let lo = f32x4_splat(EXP_LO);
    let keep = f32x4_ge(z, lo);
    let zc = f32x4_max(z, lo);
    let n = f32x4_nearest(f32x4_mul(zc, f32x4_splat(LOG2E)));
    let r = f32x4_sub(f32x4_sub(zc, f32x4_mul(n, f32x4_splat(C1))), f32x4_mul(n, f32x4_splat(C2)));
    let mut y = f32x4_splat(P0);
    y = f32x4_add(f32x4_mul(y, r), f32x4_splat(P1));
    y = f32x4_add(f32x4_mul(y, r), f32x4_splat(P2));
    y = f32x4_add(f32x4_mul(y, r), f32x4_splat(P3));
    y = f32x4_add(f32x4_mul(y, r), f32x4_splat(P4));
    y = f32x4_add(f32x4_mul(y, r), f32x4_splat(P5));
    y = f32x4_add(f32x4_add(f32x4_mul(y, f32x4_mul(r, r)), r), f32x4_splat(1.0));
    let pow = i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(n), i32x4_splat(127)), 23);
    v128_and(f32x4_mul(y, pow), keep)
}

pub fn max(x: &[f32]) -> f32 {
    let ninf = f32x4_splat(f32::NEG_INFINITY);
    let (mut a0, mut a1, mut a2, mut a3) = (ninf, ninf, ninf, ninf);
    let mut c16 = x.chunks_exact(16);
    for c in &mut c16 {
        a0 = f32x4_max(a0, ld(&c[0..4]));
        a1 = f32x4_max(a1, ld(&c[4..8]));
        a2 = f32x4_max(a2, ld(&c[8..12]));
        a3 = f32x4_max(a3, ld(&c[12..16]));
    }
    let rest = c16.remainder();
    let mut c4 = rest.chunks_exact(4);
    for c in &mut c4 {
        a0 = f32x4_max(a0, ld(c));
    }
    let mut m = hmax(f32x4_max(f32x4_max(a0, a1), f32x4_max(a2, a3)));
    for &e in c4.remainder() {
        m = nan_max(m, e);
    }
    m
}

pub fn exp_sum(x: &[f32], max: f32, inv_t: f32) -> f64 {
    let (vm, vt) = (f32x4_splat(max), f32x4_splat(inv_t));
    let zero = f64x2_splat(0.0);
    let (mut s0, mut s1) = (zero, zero);
    let mut c8 = x.chunks_exact(8);
    for c in &mut c8 {
        let e0 = exp4(f32x4_mul(f32x4_sub(ld(&c[0..4]), vm), vt));
        let e1 = exp4(f32x4_mul(f32x4_sub(ld(&c[4..8]), vm), vt));
        s0 = add_widened(s0, e0);
        s1 = add_widened(s1, e1);
    }
    let mut s = hsum64(f64x2_add(s0, s1));
    for &e in c8.remainder() {
        s += crate::simd::exp_f32((e - max) * inv_t) as f64;
    }
    s
}

pub fn exp_store_sum(src: &[f32], dst: &mut [f32], max: f32, inv_t: f32, keep_from: f32) -> f64 {
    let (vm, vt, vk) = (f32x4_splat(max), f32x4_splat(inv_t), f32x4_splat(keep_from));
    let zero = f64x2_splat(0.0);
    let (mut s0, mut s1) = (zero, zero);
    let mut cs = src.chunks_exact(8);
    let mut cd = dst.chunks_exact_mut(8);
    for (c, d) in (&mut cs).zip(&mut cd) {
        let x0 = ld(&c[0..4]);
        let x1 = ld(&c[4..8]);
        let e0 = v128_and(exp4(f32x4_mul(f32x4_sub(x0, vm), vt)), f32x4_ge(x0, vk));
        let e1 = v128_and(exp4(f32x4_mul(f32x4_sub(x1, vm), vt)), f32x4_ge(x1, vk));
        st(&mut d[0..4], e0);
        st(&mut d[4..8], e1);
        s0 = add_widened(s0, e0);
        s1 = add_widened(s1, e1);
    }
    let mut s = hsum64(f64x2_add(s0, s1));
    for (d, &e) in cd.into_remainder().iter_mut().zip(cs.remainder()) {
        *d = if e >= keep_from { crate::simd::exp_f32((e - max) * inv_t) } else { 0.0 };
        s += *d as f64;
    }
    s
}

pub fn keep_from(key: &[f32], w: &mut [f32], from: f32) -> f64 {
    let vf = f32x4_splat(from);
    let mut s0 = f64x2_splat(0.0);
    let mut ck = key.chunks_exact(4);
    let mut cw = w.chunks_exact_mut(4);
    for (k, d) in (&mut ck).zip(&mut cw) {
        let e = v128_and(ld(d), f32x4_ge(ld(k), vf));
        st(d, e);
        s0 = add_widened(s0, e);
    }
    let mut s = hsum64(s0);
    for (d, &e) in cw.into_remainder().iter_mut().zip(ck.remainder()) {
        if !(e >= from) {
            *d = 0.0;
        }
        s += *d as f64;
    }
    s
}

pub fn scale(x: &mut [f32], s: f32) {
    let vs = f32x4_splat(s);
    let mut c = x.chunks_exact_mut(4);
    for d in &mut c {
        let e = f32x4_mul(ld(d), vs);
        st(d, e);
    }
    for e in c.into_remainder() {
        *e *= s;
    }
}

pub fn stats(x: &[f32]) -> Stats {
    let (mut lo, mut hi) = (f32x4_splat(f32::INFINITY), f32x4_splat(f32::NEG_INFINITY));
    let mut s0 = f64x2_splat(0.0);
    let mut c = x.chunks_exact(4);
    for e in &mut c {
        let v = ld(e);
        lo = f32x4_min(lo, v);
        hi = f32x4_max(hi, v);
        s0 = add_widened(s0, v);
    }
    let mut st = Stats { min: hmin(lo), max: hmax(hi), sum: hsum64(s0) };
    for &e in c.remainder() {
        st.min = nan_min(st.min, e);
        st.max = nan_max(st.max, e);
        st.sum += e as f64;
    }
    st
}

pub fn classify(p: &[f32], q: &[f32], sp: f32, sq: f32, k: f32, mut middle: impl FnMut(usize)) -> Classes {
    let (vsp, vsq, vk) = (f32x4_splat(sp), f32x4_splat(sq), f32x4_splat(k));
    let (mut plo, mut phi) = (f32x4_splat(f32::INFINITY), f32x4_splat(f32::NEG_INFINITY));
    let (mut qlo, mut qhi) = (plo, phi);
    let (mut a, mut b) = (f64x2_splat(0.0), f64x2_splat(0.0));
    let (mut pa, mut qb) = (f64x2_splat(0.0), f64x2_splat(0.0));
    let mut cp = p.chunks_exact(4);
    let mut cq = q.chunks_exact(4);
    let mut i = 0;
    for (x, y) in (&mut cp).zip(&mut cq) {
        let (x, y) = (ld(x), ld(y));
        plo = f32x4_min(plo, x);
        phi = f32x4_max(phi, x);
        qlo = f32x4_min(qlo, y);
        qhi = f32x4_max(qhi, y);
        let (pp, qq) = (f32x4_mul(x, vsp), f32x4_mul(y, vsq));
        let low = f32x4_le(pp, qq);
        let high = v128_andnot(f32x4_ge(pp, f32x4_mul(qq, vk)), low);
        a = add_widened(a, v128_and(y, high));
        b = add_widened(b, v128_and(x, low));
        pa = add_widened(pa, v128_and(x, high));
        qb = add_widened(qb, v128_and(y, low));
        let mut bits = i32x4_bitmask(v128_not(v128_or(low, high)));
        while bits != 0 {
            middle(i + bits.trailing_zeros() as usize);
            bits &= bits - 1;
        }
        i += 4;
    }
    let mut c = Classes {
        a: hsum64(a),
        b: hsum64(b),
        pa: hsum64(pa),
        qb: hsum64(qb),
        p_min: hmin(plo),
        p_max: hmax(phi),
        q_min: hmin(qlo),
        q_max: hmax(qhi),
    };
    for (&x, &y) in cp.remainder().iter().zip(cq.remainder()) {
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
        i += 1;
    }
    c
}

#[inline(always)]
fn residual2(x: v128, y: v128, vsp: v128, vsq: v128, vr: v128, vc: v128) -> v128 {
    let (x, y) = (f64x2_mul(x, vsp), f64x2_mul(y, vsq));
    let m = f64x2_div(x, vr);
    let m = f64x2_pmin(y, m);
    f64x2_pmax(f64x2_splat(0.0), f64x2_sub(x, f64x2_mul(m, vc)))
}

pub fn residual_blocks(p: &[f32], q: &[f32], sp: f64, sq: f64, rho: f64, c: f64, blocks: &mut [f64]) -> f64 {
    let (vsp, vsq, vr, vc) = (f64x2_splat(sp), f64x2_splat(sq), f64x2_splat(rho), f64x2_splat(c));
    let mut total = 0.0;
    for (j, (pb, qb)) in p.chunks(BLOCK).zip(q.chunks(BLOCK)).enumerate() {
        let (mut s0, mut s1) = (f64x2_splat(0.0), f64x2_splat(0.0));
        let mut cp = pb.chunks_exact(4);
        let mut cq = qb.chunks_exact(4);
        for (x, y) in (&mut cp).zip(&mut cq) {
            let (x, y) = (ld(x), ld(y));
            let (xl, yl) = (f64x2_promote_low_f32x4(x), f64x2_promote_low_f32x4(y));
            let xh = f64x2_promote_low_f32x4(i32x4_shuffle::<2, 3, 2, 3>(x, x));
            let yh = f64x2_promote_low_f32x4(i32x4_shuffle::<2, 3, 2, 3>(y, y));
            s0 = f64x2_add(s0, residual2(xl, yl, vsp, vsq, vr, vc));
            s1 = f64x2_add(s1, residual2(xh, yh, vsp, vsq, vr, vc));
        }
        let mut s = hsum64(f64x2_add(s0, s1));
        for (&x, &y) in cp.remainder().iter().zip(cq.remainder()) {
            s += residual_weight(x, y, sp, sq, rho, c);
        }
        blocks[j] = s;
        total += s;
    }
    total
}

pub fn blocks_f32(x: &[f32], blocks: &mut [f64]) -> f64 {
    let mut total = 0.0;
    for (j, b) in x.chunks(BLOCK).enumerate() {
        let mut s0 = f64x2_splat(0.0);
        let mut c = b.chunks_exact(4);
        for e in &mut c {
            s0 = add_widened(s0, ld(e));
        }
        let mut s = hsum64(s0);
        for &e in c.remainder() {
            s += e as f64;
        }
        blocks[j] = s;
        total += s;
    }
    total
}

pub fn blocks_f64(x: &[f64], blocks: &mut [f64]) -> f64 {
    let mut total = 0.0;
    for (j, b) in x.chunks(BLOCK).enumerate() {
        let (mut s0, mut s1) = (f64x2_splat(0.0), f64x2_splat(0.0));
        let mut c = b.chunks_exact(4);
        for e in &mut c {
            s0 = f64x2_add(s0, ld64(&e[0..2]));
            s1 = f64x2_add(s1, ld64(&e[2..4]));
        }
        let mut s = hsum64(f64x2_add(s0, s1));
        for &e in c.remainder() {
            s += e;
        }
        blocks[j] = s;
        total += s;
    }
    total
}

pub fn widen_div(src: &[f32], dst: &mut [f64], div: f64) {
    let vd = f64x2_splat(div);
    let mut cs = src.chunks_exact(4);
    let mut cd = dst.chunks_exact_mut(4);
    for (s, d) in (&mut cs).zip(&mut cd) {
        let x = ld(s);
        let lo = f64x2_div(f64x2_promote_low_f32x4(x), vd);
        let hi = f64x2_div(f64x2_promote_low_f32x4(i32x4_shuffle::<2, 3, 2, 3>(x, x)), vd);
        st64(&mut d[0..2], lo);
        st64(&mut d[2..4], hi);
    }
    for (d, &s) in cd.into_remainder().iter_mut().zip(cs.remainder()) {
        *d = s as f64 / div;
    }
}

pub fn pos_diff_sum(t: &[f64], d: &[f64]) -> f64 {
    let zero = f64x2_splat(0.0);
    let mut s0 = zero;
    let mut ct = t.chunks_exact(2);
    let mut cd = d.chunks_exact(2);
    for (a, b) in (&mut ct).zip(&mut cd) {
        s0 = f64x2_add(s0, f64x2_pmax(zero, f64x2_sub(ld64(a), ld64(b))));
    }
    let mut s = hsum64(s0);
    for (&a, &b) in ct.remainder().iter().zip(cd.remainder()) {
        s += crate::simd::pos(a - b);
    }
    s
}

pub fn pos_diff_div(t: &mut [f64], d: &[f64], div: f64) {
    let zero = f64x2_splat(0.0);
    let vd = f64x2_splat(div);
    let mut ct = t.chunks_exact_mut(2);
    let mut cd = d.chunks_exact(2);
    for (a, b) in (&mut ct).zip(&mut cd) {
        let v = f64x2_div(f64x2_pmax(zero, f64x2_sub(ld64(a), ld64(b))), vd);
        st64(a, v);
    }
    for (a, &b) in ct.into_remainder().iter_mut().zip(cd.remainder()) {
        *a = crate::simd::pos(*a - b) / div;
    }
}

pub fn div_f64(x: &mut [f64], div: f64) {
    let vd = f64x2_splat(div);
    let mut c = x.chunks_exact_mut(2);
    for a in &mut c {
        let v = f64x2_div(ld64(a), vd);
        st64(a, v);
    }
    for a in c.into_remainder() {
        *a /= div;
    }
}
