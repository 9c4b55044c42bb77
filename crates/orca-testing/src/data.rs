//! Deterministic test data: the same arguments give the same bytes on every run.

/// Oracle-like data: `n` blocks of 8 KiB, each starting with its number and `seed`, then
/// row text drawn from a few words (compresses about 3x). Different seeds share no block.
pub fn oracle_blocks(n: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 8192);
    let mut x = seed | 1;
    let words = [
        "SMITH",
        "JONES",
        "ORDER",
        "PAID",
        "SHIPPED",
        "2026-11-22",
        "LONDON",
        "PARIS",
        "ACME",
        "WIDGET",
    ];
    for b in 0..n {
        let start = out.len();
        out.extend_from_slice(&(b as u64).to_le_bytes());
        out.extend_from_slice(&seed.to_le_bytes());
        while out.len() - start < 8192 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(words[(x % 10) as usize].as_bytes());
            out.extend_from_slice(&(x >> 20).to_le_bytes()[..2]);
        }
        out.truncate(start + 8192);
    }
    out
}

/// `len` bytes of a ramp that rises by 7 every 13 bytes (wrapping): cheap to make,
/// compressible, and shifted by `seed`.
pub fn pattern(len: u32, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7 + seed) / 13).to_le_bytes()[0])
        .collect()
}

/// `len` incompressible bytes (a xorshift stream from `seed`): data whose stored size is
/// its length, so that a test can count what a change costs in bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}
