//! Verification steps: K-SEQ selection (SpecTr, Sun et al., NeurIPS 2023), the full K-SEQ step
//! (warp both rows, solve ρ*, select) and SpecInfer recursive rejection sampling.

use crate::error::{check_draws, check_k, Error};
use crate::rho::{acceptance, check_row, clamp01, solve, Entry, Rho};
use crate::sample::draw;
use crate::simd::{self, residual_weight};
use crate::warp::{warp, Options, Scratch};

/// What a step decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// Output token id.
    pub token: usize,
    /// Accepted candidate, or -1 for a residual draw.
    pub draft_index: i32,
    /// ρ*, β and acceptance used.
    pub rho: Rho,
}

/// Rows p·sp and q·sq over the same vocabulary (raw f32 plus f64 scale factors).
#[derive(Clone, Copy)]
pub struct Pair<'a> {
    /// Target row (raw).
    pub p: &'a [f32],
    /// Draft row (raw).
    pub q: &'a [f32],
    /// Scale of p (1 for a plain row, 1/Σ for warped weights).
    pub sp: f64,
    /// Scale of q.
    pub sq: f64,
}

/// The K-SEQ residual factor c = (1 − (1 − β)^k)/β for normalised rows (its limit k when β = 0),
/// as acceptance·Σp/β with acceptance = 1 − d^k: p_res ∝ max(0, p − min(q, p/ρ)·c) is then the
/// normalised p minus what the candidates deliver, and c = ρ exactly where e = d^k.
pub fn residual_factor(rho: &Rho, k: u32) -> f64 {
    if rho.beta > 0.0 {
        rho.acceptance * rho.p_mass / rho.beta
    } else {
        k as f64
    }
}

/// The solution for a given (ρ, β): d = Σ max(0, q − p/ρ)/Σq by one pass, acceptance 1 − d^k.
pub fn given_solution(rows: Pair<'_>, k: u32, rho: f64, beta: f64) -> Rho {
    let (d, p_mass, q_mass) = simd::miss(rows.p, rows.q, rows.sp, rows.sq, rho);
    let miss = clamp01(d / q_mass);
    Rho { rho, beta, acceptance: acceptance(beta, miss, k), miss, p_mass }
}

/// Solves ρ* (or checks the rows when `given` holds ρ, β), then accepts candidate i, in order,
/// iff u_i·ρ·q(x_i) < p(x_i); if none is accepted draws the residual with `uniforms[k]` (p if
/// the residual has no mass). Scratch: `list` n entries, `blocks` ⌈n/64⌉ f64 (may alias nothing).
pub fn kseq_select(
    rows: Pair<'_>,
    candidates: &[u32],
    uniforms: &[f64],
    given: Option<(f64, f64)>,
    list: &mut [Entry],
    blocks: &mut [f64],
) -> Result<Decision, Error> {
    let Pair { p, q, sp, sq } = rows;
    let n = p.len();
    if n == 0 {
        return Err(Error::Empty);
    }
    let k = candidates.len();
    check_k(k)?;
    let rho = match given {
        None => solve(p, q, sp, sq, k as u32, list)?,
        Some((rho, beta)) => {
            let (a, b) = (simd::stats(p), simd::stats(q));
            check_row(p, a.min, a.max, 0)?;
            check_row(q, b.min, b.max, 1)?;
            given_solution(rows, k as u32, rho, beta)
        }
    };
    if uniforms.len() != k + 1 {
        return Err(Error::Uniform { index: uniforms.len().min(k + 1) });
    }
    check_draws(candidates, uniforms, n)?;
    for (i, &x) in candidates.iter().enumerate() {
        let x = x as usize;
        if uniforms[i] * rho.rho * (q[x] as f64 * sq) < p[x] as f64 * sp {
            return Ok(Decision { token: x, draft_index: i as i32, rho });
        }
    }
    let token = residual_draw(rows, k as u32, &rho, uniforms[k], blocks);
    Ok(Decision { token, draft_index: -1, rho })
}

/// One residual draw: weights max(0, p − min(q, p/ρ)·c), or p when they have no mass.
pub fn residual_draw(rows: Pair<'_>, k: u32, rho: &Rho, u: f64, blocks: &mut [f64]) -> usize {
    let Pair { p, q, sp, sq } = rows;
    let n = p.len();
    let c = residual_factor(rho, k);
    let r = rho.rho;
    let total = simd::residual_blocks(p, q, sp, sq, r, c, blocks);
    let found = if total > 0.0 {
        draw(n, blocks, total, u, |i| residual_weight(p[i], q[i], sp, sq, r, c))
    } else {
        let total = simd::blocks_f32(p, blocks);
        draw(n, blocks, total, u, |i| p[i] as f64)
    };
    found.unwrap_or(0)
}

/// The normalised residual into `out` (p normalised when the residual has no mass).
pub fn residual(rows: Pair<'_>, k: u32, rho: f64, beta: f64, out: &mut [f32]) -> Result<(), Error> {
    let Pair { p, q, sp, sq } = rows;
    let n = p.len();
    if n == 0 {
        return Err(Error::Empty);
    }
    let (a, b) = (simd::stats(p), simd::stats(q));
    check_row(p, a.min, a.max, 0)?;
    check_row(q, b.min, b.max, 1)?;
    check_k(k as usize)?;
    let c = residual_factor(&given_solution(rows, k, rho, beta), k);
    let mut total = 0.0;
    for i in 0..n {
        let w = residual_weight(p[i], q[i], sp, sq, rho, c);
        out[i] = w as f32;
        total += w;
    }
    if total > 0.0 {
        for i in 0..n {
            out[i] = (residual_weight(p[i], q[i], sp, sq, rho, c) / total) as f32;
        }
    } else {
        for i in 0..n {
            out[i] = (p[i] as f64 / a.sum) as f32;
        }
    }
    Ok(())
}

/// Scratch for [`kseq_step`].
pub struct StepScratch<'a> {
    /// Compact ratio list, n entries (also the warp scratch).
    pub list: &'a mut [Entry],
    /// Top-k keys, n f32.
    pub keys: &'a mut [f32],
    /// Top-p pairs, n.
    pub pairs: &'a mut [crate::select::Pair],
    /// Block sums, ⌈n/64⌉ f64.
    pub blocks: &'a mut [f64],
}

/// One full K-SEQ verification step: warp both logit rows into `p_out`, `q_out` (unnormalised
/// weights), solve ρ*, select.
#[allow(clippy::too_many_arguments)]
pub fn kseq_step(
    logits_p: &[f32],
    logits_q: &[f32],
    p_out: &mut [f32],
    q_out: &mut [f32],
    opt: &Options,
    candidates: &[u32],
    uniforms: &[f64],
    s: StepScratch<'_>,
) -> Result<Decision, Error> {
    let sp = warp(logits_p, p_out, opt, 0, Scratch { keys: &mut *s.keys, pairs: &mut *s.pairs })?;
    let sq = warp(logits_q, q_out, opt, 1, Scratch { keys: &mut *s.keys, pairs: &mut *s.pairs })?;
    let n = logits_p.len();
    let rows = Pair { p: &p_out[..n], q: &q_out[..n], sp: 1.0 / sp, sq: 1.0 / sq };
    kseq_select(rows, candidates, uniforms, None, s.list, s.blocks)
}

/// SpecInfer recursive rejection sampling (reference `specInferSelectReference`). p and q are
/// only read; normalised f64 copies go to `t` and `d` (n each) at the first rejection.
pub fn specinfer_select(
    p: &[f32],
    q: &[f32],
    candidates: &[u32],
    uniforms: &[f64],
    without_replacement: bool,
    t: &mut [f64],
    d: &mut [f64],
    blocks: &mut [f64],
) -> Result<(usize, i32), Error> {
    let n = p.len();
    if n == 0 {
        return Err(Error::Empty);
    }
    let (a, b) = (simd::stats(p), simd::stats(q));
    check_row(p, a.min, a.max, 0)?;
    check_row(q, b.min, b.max, 1)?;
    let k = candidates.len();
    check_k(k)?;
    if uniforms.len() != k + 1 {
        return Err(Error::Uniform { index: uniforms.len().min(k + 1) });
    }
    check_draws(candidates, uniforms, n)?;
    let (t, d) = (&mut t[..n], &mut d[..n]);
    let mut copied = false;
    for (i, &x) in candidates.iter().enumerate() {
        let x = x as usize;
        let (tx, dx) = if copied { (t[x], d[x]) } else { (p[x] as f64 / a.sum, q[x] as f64 / b.sum) };
        if uniforms[i] * dx < tx {
            return Ok((x, i as i32));
        }
        if !copied {
            simd::widen_div(p, t, a.sum);
            simd::widen_div(q, d, b.sum);
            copied = true;
        }
        let s = simd::pos_diff_sum(t, d);
        if s > 0.0 {
            simd::pos_diff_div(t, d, s);
        }
        if without_replacement {
            let left = 1.0 - d[x];
            d[x] = 0.0;
            if left > 0.0 {
                simd::div_f64(d, left);
            }
        }
    }
    let total = simd::blocks_f64(t, blocks);
    let t = &*t;
    Ok((draw(n, blocks, total, uniforms[k], |i| t[i]).unwrap_or(0), -1))
}
