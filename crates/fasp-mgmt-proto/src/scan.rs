//! Bulk classification of 64-byte blocks: where the line feeds and colons are, which bytes
//! cannot be in a key, which bytes need a closer look (non-ASCII or NUL).
//!
//! On x86_64 this uses SSE2, which every x86_64 CPU has, or AVX2 when the CPU has it (detected
//! at run time, once per parser); elsewhere a plain loop. The three are checked against each
//! other by the tests and the fuzz harness. Scanning 64 bytes at once instead of searching
//! line by line is what makes the parser outrun `httparse` (see docs/benchmarks.md).

/// Bit `i` of each mask describes byte `i` of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Masks {
    /// `\n`
    pub(crate) nl: u64,
    /// `:`
    pub(crate) colon: u64,
    /// Bytes a key cannot hold: controls, space, DEL, non-ASCII.
    pub(crate) key_bad: u64,
    /// Whether the block holds a non-ASCII byte or a NUL: the frame needs the full UTF-8/NUL
    /// check.
    pub(crate) suspicious: bool,
    /// Whether the block holds a `\r` (line ends may be CRLF).
    pub(crate) cr: bool,
}

/// Classify one block.
#[inline]
pub(crate) fn masks(block: &[u8; 64]) -> Masks {
    #[cfg(target_arch = "x86_64")]
    {
        #[allow(unsafe_code)]
        // SAFETY: `sse2::masks` only needs the SSE2 target feature, which is part of the
        // x86_64 baseline: every CPU this code can run on has it.
        unsafe {
            sse2::masks(block)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        scalar_masks(block)
    }
}

/// Whether [`masks_avx2`] may be called on this CPU, and the parser's block loop compiled for
/// AVX2 with BMI1 and BMI2 (every CPU with AVX2 has both; detected at run time, the standard
/// library caches the answer).
#[inline]
pub(crate) fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("bmi1")
            && std::is_x86_feature_detected!("bmi2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Classify one block with two 32-byte AVX2 loads instead of four 16-byte SSE2 ones.
///
/// # Safety
///
/// The CPU must have AVX2 ([`avx2_available`] said so).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn masks_avx2(block: &[u8; 64]) -> Masks {
    avx2::masks(block)
}

/// The reference implementation (and the one used off x86_64).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub(crate) fn scalar_masks(block: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for (i, &b) in block.iter().enumerate() {
        let bit = 1u64 << i;
        if b == b'\n' {
            m.nl |= bit;
        }
        if b == b':' {
            m.colon |= bit;
        }
        if !(0x21..0x7f).contains(&b) {
            m.key_bad |= bit;
        }
        if b == 0 || b >= 0x80 {
            m.suspicious = true;
        }
        if b == b'\r' {
            m.cr = true;
        }
    }
    m
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set_epi64x, _mm_set1_epi8, _mm_setzero_si128,
    };

    use super::Masks;

    /// Per 16 bytes: three compares for the line feeds, the colons and the bytes a key cannot
    /// hold, two to gather NULs, high bytes and CRs for the whole block.
    #[inline]
    #[target_feature(enable = "sse2")]
    pub(super) fn masks(block: &[u8; 64]) -> Masks {
        let (mut nl, mut colon, mut key_bad) = (0u64, 0u64, 0u64);
        let mut odd = _mm_setzero_si128();
        let mut cr = _mm_setzero_si128();
        for (i, chunk) in block.chunks_exact(16).enumerate() {
            let v = load(chunk);
            let bits = |x: __m128i| u64::from(_mm_movemask_epi8(x) as u16) << (16 * i);
            nl |= bits(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8)));
            colon |= bits(_mm_cmpeq_epi8(v, _mm_set1_epi8(b':' as i8)));
            // Key bytes are 0x21..=0x7e: adding 1 maps them to 0x22..=0x7f, the only bytes
            // that a signed compare puts at or above 0x22 (DEL and high bytes wrap negative).
            let shifted = _mm_add_epi8(v, _mm_set1_epi8(1));
            key_bad |= bits(_mm_cmplt_epi8(shifted, _mm_set1_epi8(0x22)));
            // The sign bit is set for bytes >= 0x80 and, through the compare, for NUL.
            odd = _mm_or_si128(odd, _mm_or_si128(v, _mm_cmpeq_epi8(v, _mm_setzero_si128())));
            cr = _mm_or_si128(cr, _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\r' as i8)));
        }
        Masks {
            nl,
            colon,
            key_bad,
            suspicious: _mm_movemask_epi8(odd) != 0,
            cr: _mm_movemask_epi8(cr) != 0,
        }
    }

    /// Sixteen bytes into a register, without a raw pointer (the compiler makes it one load).
    #[inline]
    #[target_feature(enable = "sse2")]
    fn load(chunk: &[u8]) -> __m128i {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&chunk[..8]);
        hi.copy_from_slice(&chunk[8..16]);
        _mm_set_epi64x(i64::from_le_bytes(hi), i64::from_le_bytes(lo))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi8, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256,
        _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8, _mm256_setzero_si256,
    };

    use super::Masks;

    /// The same classification as `sse2::masks`, 32 bytes per compare.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn masks(block: &[u8; 64]) -> Masks {
        let (lo, hi) = block.split_at(32);
        let (lo, hi) = (load(lo), load(hi));
        let nl_byte = _mm256_set1_epi8(b'\n' as i8);
        let nl = join(
            _mm256_cmpeq_epi8(lo, nl_byte),
            _mm256_cmpeq_epi8(hi, nl_byte),
        );
        let colon_byte = _mm256_set1_epi8(b':' as i8);
        let colon = join(
            _mm256_cmpeq_epi8(lo, colon_byte),
            _mm256_cmpeq_epi8(hi, colon_byte),
        );
        // Key bytes are 0x21..=0x7e: adding 1 maps them to 0x22..=0x7f, the only bytes that a
        // signed compare puts at or above 0x22 (DEL and high bytes wrap negative).
        let (one, limit) = (_mm256_set1_epi8(1), _mm256_set1_epi8(0x22));
        let key_bad = join(
            _mm256_cmpgt_epi8(limit, _mm256_add_epi8(lo, one)),
            _mm256_cmpgt_epi8(limit, _mm256_add_epi8(hi, one)),
        );
        // The sign bit is set for bytes >= 0x80 and, through the compare, for NUL.
        let zero = _mm256_setzero_si256();
        let odd = _mm256_or_si256(
            _mm256_or_si256(lo, _mm256_cmpeq_epi8(lo, zero)),
            _mm256_or_si256(hi, _mm256_cmpeq_epi8(hi, zero)),
        );
        let cr_byte = _mm256_set1_epi8(b'\r' as i8);
        let cr = _mm256_or_si256(
            _mm256_cmpeq_epi8(lo, cr_byte),
            _mm256_cmpeq_epi8(hi, cr_byte),
        );
        Masks {
            nl,
            colon,
            key_bad,
            suspicious: _mm256_movemask_epi8(odd) != 0,
            cr: _mm256_movemask_epi8(cr) != 0,
        }
    }

    /// The byte masks of the two halves of a block as one bit mask.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn join(lo: __m256i, hi: __m256i) -> u64 {
        u64::from(_mm256_movemask_epi8(lo) as u32)
            | (u64::from(_mm256_movemask_epi8(hi) as u32) << 32)
    }

    /// Thirty-two bytes into a register: one unaligned load. (Built from four words without a
    /// pointer, as the SSE2 path does, the compiler made it one load only in some callers: in
    /// the generic block loop it became eight instructions of partial loads and blends per
    /// block, 3% of `fasp/index`.)
    #[inline]
    #[target_feature(enable = "avx2")]
    #[allow(unsafe_code)]
    fn load(chunk: &[u8]) -> __m256i {
        let chunk: &[u8; 32] = chunk.try_into().unwrap_or(&[0; 32]);
        // SAFETY: `chunk` is 32 readable bytes, and `_mm256_loadu_si256` has no alignment
        // requirement; AVX2 is enabled on this function (callers hold the feature).
        unsafe { _mm256_loadu_si256(chunk.as_ptr().cast()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn proptest_simd_masks_match_the_reference(bytes in proptest::collection::vec(any::<u8>(), 64)) {
            let block: [u8; 64] = bytes.try_into().unwrap();
            prop_assert_eq!(masks(&block), scalar_masks(&block));
            check_avx2(&block);
        }

        #[test]
        fn proptest_simd_masks_on_protocol_text(s in "([A-Za-z: \n\r\t\u{0}\u{7f}\u{80}-\u{ff}]){64}") {
            let mut block = [0u8; 64];
            let b = s.as_bytes();
            let n = b.len().min(64);
            block[..n].copy_from_slice(&b[..n]);
            prop_assert_eq!(masks(&block), scalar_masks(&block));
            check_avx2(&block);
        }
    }

    /// The AVX2 classification equals the reference (when this CPU has AVX2).
    fn check_avx2(block: &[u8; 64]) {
        #[cfg(target_arch = "x86_64")]
        if avx2_available() {
            #[allow(unsafe_code)]
            // SAFETY: the CPU has AVX2, just checked.
            let m = unsafe { masks_avx2(block) };
            assert_eq!(m, scalar_masks(block), "AVX2 on {block:?}");
        }
    }

    #[test]
    fn every_byte_value_is_classified_alike() {
        for start in (0..=255u8).step_by(64) {
            let block: [u8; 64] = std::array::from_fn(|i| start.wrapping_add(i as u8));
            assert_eq!(masks(&block), scalar_masks(&block), "bytes from {start}");
            check_avx2(&block);
        }
    }
}
