//! Bulk classification of 64-byte blocks: where the line feeds and colons are, which bytes
//! cannot be in a key, which bytes need a closer look (non-ASCII or NUL).
//!
//! On x86_64 this uses SSE2, which every x86_64 CPU has; elsewhere a plain loop. The two are
//! checked against each other by the tests. Scanning 64 bytes at once instead of searching
//! line by line is what makes the parser outrun `httparse` (see docs/benchmarks.md).

/// Bit `i` of each mask describes byte `i` of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Masks {
    /// `\n`
    pub(crate) nl: u64,
    /// `:`
    pub(crate) colon: u64,
    /// ` `
    pub(crate) space: u64,
    /// Bytes a key cannot hold: controls, space, DEL, non-ASCII.
    pub(crate) key_bad: u64,
    /// Non-ASCII bytes and NUL: the frame needs the full UTF-8/NUL check.
    pub(crate) suspicious: u64,
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
        if b == b' ' {
            m.space |= bit;
        }
        if !(0x21..0x7f).contains(&b) {
            m.key_bad |= bit;
        }
        if b == 0 || b >= 0x80 {
            m.suspicious |= bit;
        }
    }
    m
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8,
    };

    use super::Masks;

    #[target_feature(enable = "sse2")]
    pub(super) fn masks(block: &[u8; 64]) -> Masks {
        let mut m = Masks::default();
        for (i, chunk) in block.chunks_exact(16).enumerate() {
            let v = load(chunk);
            let bits = |x: __m128i| u64::from(_mm_movemask_epi8(x) as u16) << (16 * i);
            let zero = _mm_cmpeq_epi8(v, _mm_set1_epi8(0));
            m.nl |= bits(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8)));
            m.colon |= bits(_mm_cmpeq_epi8(v, _mm_set1_epi8(b':' as i8)));
            m.space |= bits(_mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8)));
            // Signed compare: bytes >= 0x80 are negative, so "< 0x21" catches them too.
            let low_or_high = _mm_cmplt_epi8(v, _mm_set1_epi8(0x21));
            let del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
            m.key_bad |= bits(_mm_or_si128(low_or_high, del));
            // The sign bit of each byte is set exactly for bytes >= 0x80.
            m.suspicious |= bits(_mm_or_si128(v, zero));
        }
        m
    }

    /// Sixteen bytes into a register, without a raw pointer (the compiler makes it one load).
    #[target_feature(enable = "sse2")]
    fn load(chunk: &[u8]) -> __m128i {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&chunk[..8]);
        hi.copy_from_slice(&chunk[8..16]);
        _mm_set_epi64x(i64::from_le_bytes(hi), i64::from_le_bytes(lo))
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
        }

        #[test]
        fn proptest_simd_masks_on_protocol_text(s in "([A-Za-z: \n\r\t\u{0}\u{7f}\u{80}-\u{ff}]){64}") {
            let mut block = [0u8; 64];
            let b = s.as_bytes();
            let n = b.len().min(64);
            block[..n].copy_from_slice(&b[..n]);
            prop_assert_eq!(masks(&block), scalar_masks(&block));
        }
    }

    #[test]
    fn every_byte_value_is_classified_alike() {
        for start in (0..=255u8).step_by(64) {
            let block: [u8; 64] = std::array::from_fn(|i| start.wrapping_add(i as u8));
            assert_eq!(masks(&block), scalar_masks(&block), "bytes from {start}");
        }
    }
}
