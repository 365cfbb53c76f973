//! ChaCha20 keystream XOR kernels for x86_64: AVX-512F (16 blocks per pass) and AVX2 (8 blocks).
//!
//! Why our own: the `chacha20` crate's AVX-512 backend keeps a block's rows in a vector ("row
//! layout"), so every double round also shuffles, and it writes the keystream to a buffer that a
//! second pass XORs in. These kernels use the layout OpenSSL's fast paths use instead: one vector per
//! state word, one lane per block, so a round is only add/xor/rotate; the 16 (or 8) blocks are
//! transposed once at the end and XORed straight from registers into the data.
//!
//! Each kernel processes whole passes only (`blocks * 64` bytes); `keystream.rs` handles partial
//! blocks and positions. The caller picks a kernel the CPU has ([`detect`]).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// A SIMD kernel this CPU can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Level {
    /// AVX-512F: 16 blocks (1 KiB) per pass.
    Avx512,
    /// AVX2: 8 blocks (512 bytes) per pass.
    Avx2,
}

impl Level {
    /// Bytes per pass.
    pub(super) const fn pass_bytes(self) -> usize {
        match self {
            Level::Avx512 => 1024,
            Level::Avx2 => 512,
        }
    }

    /// Whether this CPU can run the kernel.
    pub(super) fn available(self) -> bool {
        match self {
            Level::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            Level::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
        }
    }

    /// XORs `passes` passes of keystream, blocks `counter`, `counter + 1`, ... (the counter wraps
    /// modulo 2^32, as in RFC 8439), from `src` into `dst`.
    ///
    /// # Safety
    /// The CPU has this level (`available`); `src` and `dst` are valid for `passes * pass_bytes()`
    /// bytes; they are equal (in place) or do not overlap.
    pub(super) unsafe fn xor_passes(
        self,
        state: &[u32; 16],
        counter: u32,
        src: *const u8,
        dst: *mut u8,
        passes: usize,
    ) {
        match self {
            Level::Avx512 => xor_avx512(state, counter, src, dst, passes),
            Level::Avx2 => xor_avx2(state, counter, src, dst, passes),
        }
    }
}

/// The fastest kernel this CPU has, if any.
pub(super) fn detect() -> Option<Level> {
    [Level::Avx512, Level::Avx2].into_iter().find(|level| level.available())
}

/// Ten double rounds over 16 word vectors `x`, with the vector operations given as closures (they
/// inline into the kernel, whose target features they then use).
macro_rules! double_rounds {
    ($x:ident, $add:expr, $xor:expr, $r16:expr, $r12:expr, $r8:expr, $r7:expr) => {
        for _ in 0..10 {
            double_rounds!(@qr $x, $add, $xor, $r16, $r12, $r8, $r7;
                0, 4, 8, 12; 1, 5, 9, 13; 2, 6, 10, 14; 3, 7, 11, 15);
            double_rounds!(@qr $x, $add, $xor, $r16, $r12, $r8, $r7;
                0, 5, 10, 15; 1, 6, 11, 12; 2, 7, 8, 13; 3, 4, 9, 14);
        }
    };
    // Four independent quarter rounds, interleaved step by step so their instructions overlap.
    (@qr $x:ident, $add:expr, $xor:expr, $r16:expr, $r12:expr, $r8:expr, $r7:expr;
        $($a:literal, $b:literal, $c:literal, $d:literal);+) => {
        $( $x[$a] = $add($x[$a], $x[$b]); )+
        $( $x[$d] = $r16($xor($x[$d], $x[$a])); )+
        $( $x[$c] = $add($x[$c], $x[$d]); )+
        $( $x[$b] = $r12($xor($x[$b], $x[$c])); )+
        $( $x[$a] = $add($x[$a], $x[$b]); )+
        $( $x[$d] = $r8($xor($x[$d], $x[$a])); )+
        $( $x[$c] = $add($x[$c], $x[$d]); )+
        $( $x[$b] = $r7($xor($x[$b], $x[$c])); )+
    };
}

// `m` indexes the inner arrays of `v` (v[0][m], v[1][m], ...): no iterator says that more clearly.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f")]
unsafe fn xor_avx512(state: &[u32; 16], counter: u32, mut src: *const u8, mut dst: *mut u8, passes: usize) {
    let init: [__m512i; 16] = std::array::from_fn(|i| _mm512_set1_epi32(state[i] as i32));
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let mut ctr = _mm512_add_epi32(_mm512_set1_epi32(counter as i32), lanes);
    for _ in 0..passes {
        let mut x = init;
        x[12] = ctr;
        double_rounds!(
            x,
            |a, b| _mm512_add_epi32(a, b),
            |a, b| _mm512_xor_si512(a, b),
            |a| _mm512_rol_epi32::<16>(a),
            |a| _mm512_rol_epi32::<12>(a),
            |a| _mm512_rol_epi32::<8>(a),
            |a| _mm512_rol_epi32::<7>(a)
        );
        for (i, word) in x.iter_mut().enumerate() {
            *word = _mm512_add_epi32(*word, if i == 12 { ctr } else { init[i] });
        }
        // Transpose: x[w] lane b is word w of block b; block b must become one vector. After the
        // 32- and 64-bit interleaves, v[g][m] holds in its 128-bit lane k words 4g..4g+3 of block
        // 4k + m; the lane shuffles then gather block 4k + m from v[0..4][m], lane k.
        let mut v = [[_mm512_setzero_si512(); 4]; 4];
        for (g, vg) in v.iter_mut().enumerate() {
            let w = 4 * g;
            let lo01 = _mm512_unpacklo_epi32(x[w], x[w + 1]);
            let hi01 = _mm512_unpackhi_epi32(x[w], x[w + 1]);
            let lo23 = _mm512_unpacklo_epi32(x[w + 2], x[w + 3]);
            let hi23 = _mm512_unpackhi_epi32(x[w + 2], x[w + 3]);
            *vg = [
                _mm512_unpacklo_epi64(lo01, lo23),
                _mm512_unpackhi_epi64(lo01, lo23),
                _mm512_unpacklo_epi64(hi01, hi23),
                _mm512_unpackhi_epi64(hi01, hi23),
            ];
        }
        for m in 0..4 {
            let p0 = _mm512_shuffle_i32x4::<0b01_00_01_00>(v[0][m], v[1][m]);
            let p1 = _mm512_shuffle_i32x4::<0b11_10_11_10>(v[0][m], v[1][m]);
            let p2 = _mm512_shuffle_i32x4::<0b01_00_01_00>(v[2][m], v[3][m]);
            let p3 = _mm512_shuffle_i32x4::<0b11_10_11_10>(v[2][m], v[3][m]);
            let blocks = [
                _mm512_shuffle_i32x4::<0b10_00_10_00>(p0, p2),
                _mm512_shuffle_i32x4::<0b11_01_11_01>(p0, p2),
                _mm512_shuffle_i32x4::<0b10_00_10_00>(p1, p3),
                _mm512_shuffle_i32x4::<0b11_01_11_01>(p1, p3),
            ];
            for (k, block) in blocks.into_iter().enumerate() {
                let at = (4 * k + m) * 64;
                let data = _mm512_loadu_si512(src.add(at).cast());
                _mm512_storeu_si512(dst.add(at).cast(), _mm512_xor_si512(data, block));
            }
        }
        ctr = _mm512_add_epi32(ctr, _mm512_set1_epi32(16));
        src = src.add(1024);
        dst = dst.add(1024);
    }
}

#[allow(clippy::needless_range_loop)] // as in xor_avx512
#[target_feature(enable = "avx2")]
unsafe fn xor_avx2(state: &[u32; 16], counter: u32, mut src: *const u8, mut dst: *mut u8, passes: usize) {
    let init: [__m256i; 16] = std::array::from_fn(|i| _mm256_set1_epi32(state[i] as i32));
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mut ctr = _mm256_add_epi32(_mm256_set1_epi32(counter as i32), lanes);
    // Byte shuffles rotate by 16 and 8 in one instruction; 12 and 7 take shift, shift, or.
    let rot16 = _mm256_setr_epi8(
        2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15,
        12, 13,
    );
    let rot8 = _mm256_setr_epi8(
        3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14, 3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12,
        13, 14,
    );
    for _ in 0..passes {
        let mut x = init;
        x[12] = ctr;
        double_rounds!(
            x,
            |a, b| _mm256_add_epi32(a, b),
            |a, b| _mm256_xor_si256(a, b),
            |a| _mm256_shuffle_epi8(a, rot16),
            |a| _mm256_or_si256(_mm256_slli_epi32::<12>(a), _mm256_srli_epi32::<20>(a)),
            |a| _mm256_shuffle_epi8(a, rot8),
            |a| _mm256_or_si256(_mm256_slli_epi32::<7>(a), _mm256_srli_epi32::<25>(a))
        );
        for (i, word) in x.iter_mut().enumerate() {
            *word = _mm256_add_epi32(*word, if i == 12 { ctr } else { init[i] });
        }
        // As in the AVX-512 kernel, with two 128-bit lanes: v[g][m] lane k holds words 4g..4g+3 of
        // block 4k + m, and a block is two vectors: (v[0][m], v[1][m]) and (v[2][m], v[3][m]), lane k.
        let mut v = [[_mm256_setzero_si256(); 4]; 4];
        for (g, vg) in v.iter_mut().enumerate() {
            let w = 4 * g;
            let lo01 = _mm256_unpacklo_epi32(x[w], x[w + 1]);
            let hi01 = _mm256_unpackhi_epi32(x[w], x[w + 1]);
            let lo23 = _mm256_unpacklo_epi32(x[w + 2], x[w + 3]);
            let hi23 = _mm256_unpackhi_epi32(x[w + 2], x[w + 3]);
            *vg = [
                _mm256_unpacklo_epi64(lo01, lo23),
                _mm256_unpackhi_epi64(lo01, lo23),
                _mm256_unpacklo_epi64(hi01, hi23),
                _mm256_unpackhi_epi64(hi01, hi23),
            ];
        }
        for m in 0..4 {
            let halves = [
                (m, _mm256_permute2x128_si256::<0x20>(v[0][m], v[1][m])),
                (m, _mm256_permute2x128_si256::<0x20>(v[2][m], v[3][m])),
                (4 + m, _mm256_permute2x128_si256::<0x31>(v[0][m], v[1][m])),
                (4 + m, _mm256_permute2x128_si256::<0x31>(v[2][m], v[3][m])),
            ];
            for (i, (block, half)) in halves.into_iter().enumerate() {
                let at = block * 64 + (i % 2) * 32;
                let data = _mm256_loadu_si256(src.add(at).cast());
                _mm256_storeu_si256(dst.add(at).cast(), _mm256_xor_si256(data, half));
            }
        }
        ctr = _mm256_add_epi32(ctr, _mm256_set1_epi32(8));
        src = src.add(512);
        dst = dst.add(512);
    }
}
