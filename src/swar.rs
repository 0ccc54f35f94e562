//! Byte searches eight bytes at a time (SIMD within a register): the lexer's next `{`
//! (src/syntax/lex.rs) and the end of a JSON string in content-type detection (src/detect.rs).
//! Both search short texts, where a general searcher's setup costs more per call than its scan.
//!
//! A mask flags a byte with its high bit. [`eq`] and [`below`] may also flag a byte above a
//! true match (a borrow carries into it), never one below: in a word, the lowest flag of a mask,
//! or of several or-ed together, is the first match.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = ONES << 7;

/// The bytes of `x` equal to `b`.
#[inline]
pub(crate) fn eq(x: u64, b: u8) -> u64 {
    let y = x ^ (ONES * u64::from(b));
    y.wrapping_sub(ONES) & !y & HIGH
}

/// The bytes of `x` below `n` (`n` at most 128).
#[inline]
#[cfg_attr(not(feature = "listener"), allow(dead_code))] // src/detect.rs comes with the listener
pub(crate) fn below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH
}

/// Where the first byte of `b` at or after `from` is that `word` flags (a mask built from
/// [`eq`] and [`below`] of the eight bytes read little-endian) and `byte` accepts (the same
/// test for the last bytes, fewer than eight).
#[inline]
pub(crate) fn find(
    b: &[u8],
    from: usize,
    word: impl Fn(u64) -> u64,
    byte: impl Fn(u8) -> bool,
) -> Option<usize> {
    let rest = b.get(from..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut at = from;
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let hit = word(u64::from_le_bytes(w));
        if hit != 0 {
            return Some(at + (hit.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| byte(c))
        .map(|k| at + k)
}

#[cfg(test)]
pub(crate) mod tests {
    /// Compares `found` with a byte-by-byte search for `wanted` on texts of every length below
    /// 40 over `alphabet` (`per_len` of each, from a fixed generator), from every start.
    pub(crate) fn agrees_with_a_byte_loop(
        alphabet: &[u8],
        per_len: usize,
        found: impl Fn(&[u8], usize) -> Option<usize>,
        wanted: impl Fn(u8) -> bool,
    ) {
        let mut seed = 7u32;
        for len in 0..40 {
            for _ in 0..per_len {
                let s: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        alphabet[(seed >> 16) as usize % alphabet.len()]
                    })
                    .collect();
                for from in 0..=len + 1 {
                    let want = s
                        .get(from..)
                        .and_then(|r| r.iter().position(|&c| wanted(c)))
                        .map(|k| from + k);
                    assert_eq!(found(&s, from), want, "{s:?} from {from}");
                }
            }
        }
    }

    #[test]
    fn masks_flag_the_first_match_of_every_word() {
        let alphabet = [0, 1, 0x1f, 0x20, b'"', b'{', 0x7f, 0x80, 0xa2, 0xff];
        for (b, n) in [(b'{', 0x20), (b'"', 1), (0, 0x80)] {
            agrees_with_a_byte_loop(
                &alphabet,
                100,
                |s, from| {
                    super::find(
                        s,
                        from,
                        |x| super::eq(x, b) | super::below(x, n),
                        |c| c == b || c < n,
                    )
                },
                |c| c == b || c < n,
            );
        }
    }
}
