//! spectr's WebAssembly SIMD kernel: the C ABI only. Logic lives in the modules; this file turns
//! the caller's byte offsets into slices and results into status codes and out slots.
//!
//! Conventions (see `wasm/README.md`): JS owns the linear memory above [`spectr_heap_base`]; every
//! pointer is a byte offset (f32 rows 4-aligned, f64 arrays and scratch 16-aligned); every export
//! returns an `i32` status (0 ok, negative codes from [`error::Error::code`]) and writes its
//! results to `out`, an array of 8 f64: ρ, β, acceptance, token, draft index, error index, error
//! row, sum.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

pub mod error;
pub mod kseq;
pub mod layout;
pub mod lm;
pub mod rho;
pub mod sample;
pub mod select;
pub mod simd;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;
#[cfg(test)]
mod testutil;
pub mod warp;

use core::slice;
use error::Error;
use layout::{block_count, Layout};

#[cfg(all(not(test), target_arch = "wasm32"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// Index of ρ in `out`.
pub const OUT_RHO: usize = 0;
/// Index of β in `out`.
pub const OUT_BETA: usize = 1;
/// Index of the acceptance probability in `out`.
pub const OUT_ACCEPTANCE: usize = 2;
/// Index of the token in `out`.
pub const OUT_TOKEN: usize = 3;
/// Index of the draft index (-1 = residual) in `out`.
pub const OUT_DRAFT_INDEX: usize = 4;
/// Index of the error's element / position / count in `out`.
pub const OUT_ERROR_INDEX: usize = 5;
/// Index of the error's row (0 = target / first, 1 = draft) in `out`.
pub const OUT_ERROR_ROW: usize = 6;
/// Index of a sum (floor) in `out`.
pub const OUT_SUM: usize = 7;

unsafe fn read<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    slice::from_raw_parts(ptr, len)
}

unsafe fn write<'a, T>(ptr: *mut T, len: usize) -> &'a mut [T] {
    slice::from_raw_parts_mut(ptr, len)
}

unsafe fn region<'a, T>(scratch: *mut u8, offset: usize, len: usize) -> &'a mut [T] {
    slice::from_raw_parts_mut(scratch.add(offset) as *mut T, len)
}

unsafe fn fail(out: *mut f64, e: Error) -> i32 {
    let out = write(out, 8);
    out[OUT_ERROR_INDEX] = e.index() as f64;
    out[OUT_ERROR_ROW] = e.row() as f64;
    e.code()
}

unsafe fn report(out: *mut f64, r: Result<kseq::Decision, Error>) -> i32 {
    match r {
        Ok(d) => {
            let o = write(out, 8);
            o[OUT_RHO] = d.rho.rho;
            o[OUT_BETA] = d.rho.beta;
            o[OUT_ACCEPTANCE] = d.rho.acceptance;
            o[OUT_TOKEN] = d.token as f64;
            o[OUT_DRAFT_INDEX] = d.draft_index as f64;
            0
        }
        Err(e) => fail(out, e),
    }
}

/// First free byte of linear memory (the `__heap_base` the linker placed after stack and data).
#[cfg(target_arch = "wasm32")]
#[no_mangle]
pub extern "C" fn spectr_heap_base() -> u32 {
    extern "C" {
        static __heap_base: u8;
    }
    // SAFETY: only the address of the linker-defined symbol is taken, never its value.
    unsafe { core::ptr::addr_of!(__heap_base) as u32 }
}

/// Scratch bytes the exports need for rows of `n` and `count` uniforms (sample) or candidates.
#[no_mangle]
pub extern "C" fn spectr_scratch_bytes(n: u32, count: u32) -> u32 {
    Layout::new(n as usize, count as usize).total as u32
}

/// Warps `logits[n]` into normalised probabilities `dst[n]` (temperature → top-k → softmax →
/// top-p). `scratch` ≥ `spectr_scratch_bytes(n, 0)`. `out[7]` = the pre-normalisation sum.
///
/// # Safety
/// Pointers must be valid for the documented sizes; `dst` must not overlap `logits` or `scratch`.
#[no_mangle]
pub unsafe extern "C" fn spectr_warp(
    logits: *const f32,
    n: u32,
    dst: *mut f32,
    temperature: f64,
    top_k: u32,
    top_p: f64,
    scratch: *mut u8,
    out: *mut f64,
) -> i32 {
    let n = n as usize;
    if n == 0 {
        return fail(out, Error::Empty);
    }
    let l = Layout::new(n, 0);
    let opt = warp::Options { temperature, top_k, top_p };
    let (src, dst) = (read(logits, n), write(dst, n));
    let s = warp::Scratch { keys: region(scratch, l.keys, n), pairs: region(scratch, l.pairs, n) };
    match warp::warp(src, dst, &opt, 0, s) {
        Ok(sum) => {
            simd::scale(dst, (1.0 / sum) as f32);
            write(out, 8)[OUT_SUM] = sum;
            0
        }
        Err(e) => fail(out, e),
    }
}

/// Exact ρ*, β(ρ*) and acceptance 1 − (1 − β)^k for rows `p[n]`, `q[n]` (validated) into
/// `out[0..3]`. `scratch` ≥ `spectr_scratch_bytes(n, 0)`.
///
/// # Safety
/// Pointers must be valid for the documented sizes.
#[no_mangle]
pub unsafe extern "C" fn spectr_solve_rho(p: *const f32, q: *const f32, n: u32, k: u32, scratch: *mut u8, out: *mut f64) -> i32 {
    let n = n as usize;
    if n == 0 {
        return fail(out, Error::Empty);
    }
    if let Err(e) = error::check_k(k as usize) {
        return fail(out, e);
    }
    let list = region(scratch, Layout::new(n, 0).list, n);
    match rho::solve(read(p, n), read(q, n), 1.0, 1.0, k, list) {
        Ok(r) => {
            let o = write(out, 8);
            o[OUT_RHO] = r.rho;
            o[OUT_BETA] = r.beta;
            o[OUT_ACCEPTANCE] = r.acceptance;
            0
        }
        Err(e) => fail(out, e.into()),
    }
}

/// The normalised K-SEQ residual for (p, q, k) at (ρ, β) into `dst[n]` (p normalised when the
/// residual has no mass).
///
/// # Safety
/// Pointers must be valid for the documented sizes; `dst` must not overlap the inputs.
#[no_mangle]
pub unsafe extern "C" fn spectr_residual(
    p: *const f32,
    q: *const f32,
    n: u32,
    k: u32,
    rho: f64,
    beta: f64,
    dst: *mut f32,
    out: *mut f64,
) -> i32 {
    let n = n as usize;
    if n == 0 {
        return fail(out, Error::Empty);
    }
    let rows = kseq::Pair { p: read(p, n), q: read(q, n), sp: 1.0, sq: 1.0 };
    match kseq::residual(rows, k, rho, beta, write(dst, n)) {
        Ok(()) => 0,
        Err(e) => fail(out, e),
    }
}

/// K-SEQ selection over `candidates[k]` with `uniforms[k + 1]`; solves ρ* unless `has_solution`
/// is non-zero, then uses (`rho`, `beta`). Writes ρ, β, acceptance, token, draft index (-1 =
/// residual). `scratch` ≥ `spectr_scratch_bytes(n, k)`.
///
/// # Safety
/// Pointers must be valid for the documented sizes.
#[no_mangle]
pub unsafe extern "C" fn spectr_kseq_select(
    p: *const f32,
    q: *const f32,
    n: u32,
    candidates: *const u32,
    k: u32,
    uniforms: *const f64,
    has_solution: u32,
    rho: f64,
    beta: f64,
    scratch: *mut u8,
    out: *mut f64,
) -> i32 {
    let (n, k) = (n as usize, k as usize);
    if n == 0 {
        return fail(out, Error::Empty);
    }
    if let Err(e) = error::check_k(k) {
        return fail(out, e);
    }
    let l = Layout::new(n, k);
    let rows = kseq::Pair { p: read(p, n), q: read(q, n), sp: 1.0, sq: 1.0 };
    let given = if has_solution != 0 { Some((rho, beta)) } else { None };
    let r = kseq::kseq_select(
        rows,
        read(candidates, k),
        read(uniforms, k + 1),
        given,
        region(scratch, l.list, n),
        region(scratch, l.blocks, block_count(n)),
    );
    report(out, r)
}

/// One full K-SEQ step: warps `logits_p[n]`, `logits_q[n]` into `p_out`, `q_out` (unnormalised
/// weights), solves ρ*, selects among `candidates[k]` with `uniforms[k + 1]`.
/// `scratch` ≥ `spectr_scratch_bytes(n, k)`.
///
/// # Safety
/// Pointers must be valid for the documented sizes; outputs must not overlap anything else.
#[no_mangle]
pub unsafe extern "C" fn spectr_kseq_step(
    logits_p: *const f32,
    logits_q: *const f32,
    n: u32,
    p_out: *mut f32,
    q_out: *mut f32,
    temperature: f64,
    top_k: u32,
    top_p: f64,
    candidates: *const u32,
    k: u32,
    uniforms: *const f64,
    scratch: *mut u8,
    out: *mut f64,
) -> i32 {
    let (n, k) = (n as usize, k as usize);
    if n == 0 {
        return fail(out, Error::Empty);
    }
    if let Err(e) = error::check_k(k) {
        return fail(out, e);
    }
    let l = Layout::new(n, k);
    let opt = warp::Options { temperature, top_k, top_p };
    let s = kseq::StepScratch {
        list: region(scratch, l.list, n),
        keys: region(scratch, l.keys, n),
        pairs: region(scratch, l.pairs, n),
        blocks: region(scratch, l.blocks, block_count(n)),
    };
    let r = kseq::kseq_step(
        read(logits_p, n),
        read(logits_q, n),
        write(p_out, n),
        write(q_out, n),
        &opt,
        read(candidates, k),
        read(uniforms, k + 1),
        s,
    );
    report(out, r)
}

/// SpecInfer recursive rejection sampling over `candidates[k]` with `uniforms[k + 1]`, with or
/// without replacement. Reads p and q only. `scratch` ≥ `spectr_scratch_bytes(n, k)`.
///
/// # Safety
/// Pointers must be valid for the documented sizes.
#[no_mangle]
pub unsafe extern "C" fn spectr_specinfer_select(
    p: *const f32,
    q: *const f32,
    n: u32,
    candidates: *const u32,
    k: u32,
    uniforms: *const f64,
    without_replacement: u32,
    scratch: *mut u8,
    out: *mut f64,
) -> i32 {
    let (n, k) = (n as usize, k as usize);
    if n == 0 {
        return fail(out, Error::Empty);
    }
    if let Err(e) = error::check_k(k) {
        return fail(out, e);
    }
    let l = Layout::new(n, k);
    let r = kseq::specinfer_select(
        read(p, n),
        read(q, n),
        read(candidates, k),
        read(uniforms, k + 1),
        without_replacement != 0,
        region(scratch, l.list, n),
        region(scratch, l.list + 8 * n, n),
        region(scratch, l.blocks, block_count(n)),
    );
    match r {
        Ok((token, draft_index)) => {
            let o = write(out, 8);
            o[OUT_TOKEN] = token as f64;
            o[OUT_DRAFT_INDEX] = draft_index as f64;
            0
        }
        Err(e) => fail(out, e),
    }
}

/// Draws `count` ids into `ids` from `probs[n]` by inverse CDF with `uniforms[count]`, i.i.d. or
/// without replacement (`probs` is modified during the call and restored before it returns).
/// `scratch` ≥ `spectr_scratch_bytes(n, count)`.
///
/// # Safety
/// Pointers must be valid for the documented sizes.
#[no_mangle]
pub unsafe extern "C" fn spectr_sample(
    probs: *mut f32,
    n: u32,
    uniforms: *const f64,
    count: u32,
    without_replacement: u32,
    ids: *mut i32,
    scratch: *mut u8,
    out: *mut f64,
) -> i32 {
    let (n, count) = (n as usize, count as usize);
    if n == 0 {
        return fail(out, Error::Empty);
    }
    let l = Layout::new(n, count);
    let r = sample::sample(
        write(probs, n),
        read(uniforms, count),
        without_replacement != 0,
        write(ids, count),
        region(scratch, l.blocks, block_count(n)),
        region(scratch, l.order, count),
        region(scratch, l.saved, count),
    );
    match r {
        Ok(()) => 0,
        Err(e) => fail(out, e),
    }
}

/// The bench floor: for each of `a[n]`, `b[n]`, one max pass and one Σ exp(x − max) pass; the
/// total goes to `out[7]`.
///
/// # Safety
/// Pointers must be valid for the documented sizes.
#[no_mangle]
pub unsafe extern "C" fn spectr_floor(a: *const f32, b: *const f32, n: u32, out: *mut f64) -> i32 {
    let n = n as usize;
    if n == 0 {
        return fail(out, Error::Empty);
    }
    let (a, b) = (read(a, n), read(b, n));
    let s = simd::exp_sum(a, simd::max(a), 1.0) + simd::exp_sum(b, simd::max(b), 1.0);
    write(out, 8)[OUT_SUM] = s;
    0
}

/// `out[m×n] = x[m×k] · w[k×n]`, plus `bias[n]` unless `bias` is 0 (the `kernel` model backend's
/// linear layer; see [`lm::linear`]). Always 0.
///
/// # Safety
/// Pointers must be valid for the documented sizes; `out` must not overlap the inputs.
#[no_mangle]
pub unsafe extern "C" fn spectr_lm_linear(x: *const f32, m: u32, k: u32, w: *const f32, n: u32, bias: *const f32, out: *mut f32) -> i32 {
    let (m, k, n) = (m as usize, k as usize, n as usize);
    let bias = if bias.is_null() { None } else { Some(read(bias, n)) };
    lm::linear(read(x, m * k), m, k, read(w, k * n), n, bias, write(out, m * n));
    0
}

/// `out[m×n] = x[m×k] · wᵀ` for `w[n×k]` (a tied embedding as the output head). Always 0.
///
/// # Safety
/// Pointers must be valid for the documented sizes; `out` must not overlap the inputs.
#[no_mangle]
pub unsafe extern "C" fn spectr_lm_linear_t(x: *const f32, m: u32, k: u32, w: *const f32, n: u32, out: *mut f32) -> i32 {
    let (m, k, n) = (m as usize, k as usize, n as usize);
    lm::linear_t(read(x, m * k), m, k, read(w, n * k), n, write(out, m * n));
    0
}

/// Layer norm of the rows of `x[m×n]` with weight `w[n]`, bias `b[n]`. Always 0.
///
/// # Safety
/// Pointers must be valid for the documented sizes; `out` must not overlap the inputs.
#[no_mangle]
pub unsafe extern "C" fn spectr_lm_layer_norm(x: *const f32, m: u32, n: u32, w: *const f32, b: *const f32, eps: f32, out: *mut f32) -> i32 {
    let (m, n) = (m as usize, n as usize);
    lm::layer_norm(read(x, m * n), m, n, read(w, n), read(b, n), eps, write(out, m * n));
    0
}

/// RMS norm of the rows of `x[m×n]` with weight `w[n]`. Always 0.
///
/// # Safety
/// Pointers must be valid for the documented sizes; `out` must not overlap the inputs.
#[no_mangle]
pub unsafe extern "C" fn spectr_lm_rms_norm(x: *const f32, m: u32, n: u32, w: *const f32, eps: f32, out: *mut f32) -> i32 {
    let (m, n) = (m as usize, n as usize);
    lm::rms_norm(read(x, m * n), m, n, read(w, n), eps, write(out, m * n));
    0
}

/// In place: tanh GELU of `x[n]`. Always 0.
///
/// # Safety
/// `x` must be valid for `n` f32.
#[no_mangle]
pub unsafe extern "C" fn spectr_lm_gelu_tanh(x: *mut f32, n: u32) -> i32 {
    lm::gelu_tanh(write(x, n as usize));
    0
}

/// In place: `gate[n] ← gate · σ(gate) · up[n]`. Always 0.
///
/// # Safety
/// Pointers must be valid for `n` f32 and not overlap.
#[no_mangle]
pub unsafe extern "C" fn spectr_lm_silu_mul(gate: *mut f32, up: *const f32, n: u32) -> i32 {
    let n = n as usize;
    lm::silu_mul(write(gate, n), read(up, n));
    0
}

/// Masked attention of one row (see [`lm::attention`]): `q[t×heads·hd]`, `k`, `v`
/// `[kv_heads×total×hd]`, `mask[t×total]` bytes, `scores[total]` scratch, `out[t×heads·hd]`.
/// Always 0.
///
/// # Safety
/// Pointers must be valid for the documented sizes; `out` and `scores` must not overlap the inputs.
#[no_mangle]
pub unsafe extern "C" fn spectr_lm_attention(
    q: *const f32,
    k: *const f32,
    v: *const f32,
    mask: *const u8,
    t: u32,
    total: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    scale: f32,
    scores: *mut f32,
    out: *mut f32,
) -> i32 {
    let s = lm::AttentionShape {
        t: t as usize,
        total: total as usize,
        heads: heads as usize,
        kv_heads: kv_heads as usize,
        head_dim: head_dim as usize,
    };
    let width = s.heads * s.head_dim;
    let cache = s.kv_heads * s.total * s.head_dim;
    lm::attention(
        read(q, s.t * width),
        read(k, cache),
        read(v, cache),
        read(mask, s.t * s.total),
        s,
        scale,
        write(scores, s.total),
        write(out, s.t * width),
    );
    0
}

/// Quantizes the rows of `x[m×k]` per 32-value block (see [`lm::quantize_rows`]): `xq` i16
/// `[m×k]`, `xs` and `xsum` f32 `[m × k/32]`. Always 0.
///
/// # Safety
/// Pointers must be valid for the documented sizes and not overlap.
#[no_mangle]
pub unsafe extern "C" fn spectr_lm_quantize_rows(x: *const f32, m: u32, k: u32, xq: *mut i16, xs: *mut f32, xsum: *mut f32) -> i32 {
    let (m, k) = (m as usize, k as usize);
    let blocks = k / lm::Q8_BLOCK;
    lm::quantize_rows(read(x, m * k), m, k, write(xq, m * k), write(xs, m * blocks), write(xsum, m * blocks));
    0
}

/// 8-bit block-quantized linear layer (see [`lm::linear_q8`]): `codes` i8 `[n×k]`, `scales`
/// `[n × k/32]`, `mins` `[n × k/32]` or 0, `bias` `[n]` or 0. Always 0.
///
/// # Safety
/// Pointers must be valid for the documented sizes; `out` must not overlap the inputs.
#[no_mangle]
pub unsafe extern "C" fn spectr_lm_linear_q8(
    xq: *const i16,
    xs: *const f32,
    xsum: *const f32,
    m: u32,
    k: u32,
    codes: *const i8,
    scales: *const f32,
    mins: *const f32,
    n: u32,
    bias: *const f32,
    out: *mut f32,
) -> i32 {
    let (m, k, n) = (m as usize, k as usize, n as usize);
    let blocks = k / lm::Q8_BLOCK;
    let mins = if mins.is_null() { None } else { Some(read(mins, n * blocks)) };
    let bias = if bias.is_null() { None } else { Some(read(bias, n)) };
    lm::linear_q8(
        read(xq, m * k),
        read(xs, m * blocks),
        read(xsum, m * blocks),
        m,
        k,
        read(codes, n * k),
        read(scales, n * blocks),
        mins,
        n,
        bias,
        write(out, m * n),
    );
    0
}
