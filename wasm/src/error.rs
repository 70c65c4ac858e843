//! Input errors and their ABI status codes (negative `i32`s; 0 is success). The codes are
//! those of `src/kernel/abi_errors.ts`, the source; `src/kernel/abi_errors_test.ts` parses this file.

use crate::rho::RowError;

/// Why a call was rejected. Rows are numbered 0 (target p / first row) and 1 (draft q).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A logit is NaN.
    NanLogit {
        /// Row.
        row: u32,
        /// First offending element.
        index: usize,
    },
    /// A logit is +∞.
    PosInfLogit {
        /// Row.
        row: u32,
        /// First offending element.
        index: usize,
    },
    /// Every logit of the row is -∞.
    AllMasked {
        /// Row.
        row: u32,
    },
    /// Temperature negative, NaN or infinite.
    Temperature,
    /// top-k invalid (never produced for a `u32`; reserved).
    TopK,
    /// top-p outside (0, 1].
    TopP,
    /// A probability is negative, NaN or +∞.
    BadProb {
        /// Row.
        row: u32,
        /// First offending element.
        index: usize,
    },
    /// Every probability of the row is 0.
    ZeroMass {
        /// Row.
        row: u32,
    },
    /// k outside [1, 1024].
    BadK,
    /// A candidate id is outside [0, n).
    Candidate {
        /// Candidate position.
        index: usize,
    },
    /// A uniform is outside [0, 1).
    Uniform {
        /// Uniform position.
        index: usize,
    },
    /// Fewer tokens with mass than distinct draws requested.
    TooFew {
        /// Draws completed before running out.
        drawn: usize,
    },
    /// The row is empty.
    Empty,
}

impl Error {
    /// The ABI status code.
    pub fn code(&self) -> i32 {
        match self {
            Error::NanLogit { .. } => -1,
            Error::PosInfLogit { .. } => -2,
            Error::AllMasked { .. } => -3,
            Error::Temperature => -4,
            Error::TopK => -5,
            Error::TopP => -6,
            Error::BadProb { .. } => -7,
            Error::ZeroMass { .. } => -8,
            Error::BadK => -9,
            Error::Candidate { .. } => -10,
            Error::Uniform { .. } => -11,
            Error::TooFew { .. } => -12,
            Error::Empty => -13,
        }
    }

    /// The offending element / position / count (0 when not applicable).
    pub fn index(&self) -> usize {
        match *self {
            Error::NanLogit { index, .. }
            | Error::PosInfLogit { index, .. }
            | Error::BadProb { index, .. }
            | Error::Candidate { index }
            | Error::Uniform { index } => index,
            Error::TooFew { drawn } => drawn,
            _ => 0,
        }
    }

    /// The offending row (0 when not applicable).
    pub fn row(&self) -> u32 {
        match *self {
            Error::NanLogit { row, .. }
            | Error::PosInfLogit { row, .. }
            | Error::AllMasked { row }
            | Error::BadProb { row, .. }
            | Error::ZeroMass { row } => row,
            _ => 0,
        }
    }
}

impl From<RowError> for Error {
    fn from(e: RowError) -> Self {
        match e {
            RowError::Bad { row, index } => Error::BadProb { row, index },
            RowError::Zero { row } => Error::ZeroMass { row },
        }
    }
}

/// Checks k ∈ [1, 1024].
pub fn check_k(k: usize) -> Result<(), Error> {
    if (1..=1024).contains(&k) {
        Ok(())
    } else {
        Err(Error::BadK)
    }
}

/// Checks candidate ids (< n) and then the uniforms (each in [0, 1)).
pub fn check_draws(candidates: &[u32], uniforms: &[f64], n: usize) -> Result<(), Error> {
    check_k(candidates.len())?;
    if let Some(index) = candidates.iter().position(|&x| x as usize >= n) {
        return Err(Error::Candidate { index });
    }
    check_uniforms(uniforms)
}

/// Checks each uniform is in [0, 1).
pub fn check_uniforms(uniforms: &[f64]) -> Result<(), Error> {
    match uniforms.iter().position(|&u| !(u >= 0.0 && u < 1.0)) {
        Some(index) => Err(Error::Uniform { index }),
        None => Ok(()),
    }
}
