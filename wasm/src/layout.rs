//! The scratch layout shared by every export: byte offsets of each region inside the caller's
//! scratch buffer (all 16-byte aligned), from the row length `n` and a draw count.

/// Byte offsets of the scratch regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Ratio list (`n` × 16 bytes); SpecInfer's two f64 rows reuse it.
    pub list: usize,
    /// Top-k keys (`n` f32).
    pub keys: usize,
    /// Top-p pairs (`n` × 8 bytes).
    pub pairs: usize,
    /// Block sums (⌈n/64⌉ + 1 f64).
    pub blocks: usize,
    /// Sort order of the uniforms (`count` u32).
    pub order: usize,
    /// Saved weights for draws without replacement (`count` f32).
    pub saved: usize,
    /// Total bytes.
    pub total: usize,
}

const fn up16(x: usize) -> usize {
    (x + 15) & !15
}

/// Number of block sums for a row of `n`.
pub const fn block_count(n: usize) -> usize {
    n / crate::simd::BLOCK + 1
}

impl Layout {
    /// The layout for rows of `n` and `count` uniforms.
    pub const fn new(n: usize, count: usize) -> Self {
        let list = 0;
        let keys = up16(list + 16 * n);
        let pairs = up16(keys + 4 * n);
        let blocks = up16(pairs + 8 * n);
        let order = up16(blocks + 8 * block_count(n));
        let saved = up16(order + 4 * count);
        let total = up16(saved + 4 * count);
        Layout { list, keys, pairs, blocks, order, saved, total }
    }
}
