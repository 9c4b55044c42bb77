//! CRC-32C (Castagnoli), the checksum of piece headers, records and trailers.

/// Running CRC-32C.
#[derive(Debug, Clone, Copy, Default)]
pub struct Crc32c(u32);

impl Crc32c {
    pub fn new() -> Self {
        Self(0)
    }

    /// SSE4.2 or ARMv8 CRC instructions where the processor has them: every piece byte
    /// goes through here twice (record and stream checksums).
    pub fn update(&mut self, data: &[u8]) {
        self.0 = ::crc32c::crc32c_append(self.0, data);
    }

    /// Extends the running checksum by `len` bytes whose own CRC-32C is `crc`, without
    /// reading them again.
    pub fn append_crc(&mut self, crc: u32, len: usize) {
        self.0 = combine(self.0, crc, len as u64);
    }

    pub fn finish(self) -> u32 {
        self.0
    }
}

/// CRC-32C of one slice.
pub fn crc32c(data: &[u8]) -> u32 {
    ::crc32c::crc32c(data)
}

/// The CRC-32C polynomial, bit-reflected.
const POLY: u32 = 0x82F6_3B78;

/// `a * b` modulo the polynomial, both reflected (bit 31 is x^0).
const fn mult_mod_p(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0u32;
    loop {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                return p;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
}

/// x^(2^k) modulo the polynomial for k in 0..32 (the powers repeat with period 32 beyond).
const X2N: [u32; 32] = {
    let mut t = [0u32; 32];
    let mut p = 1u32 << 30;
    let mut k = 0;
    while k < 32 {
        t[k] = p;
        p = mult_mod_p(p, p);
        k += 1;
    }
    t
};

/// x^(n * 2^k) modulo the polynomial.
fn x2n_mod_p(mut n: u64, mut k: usize) -> u32 {
    let mut p = 1u32 << 31;
    while n != 0 {
        if n & 1 != 0 {
            p = mult_mod_p(X2N[k & 31], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// CRC-32C of `A ++ B` from CRC-32C(A), CRC-32C(B) and B's length, by zlib's method (one
/// power of x per set bit of the length): the crate's combine builds its operator matrices
/// on every call, which cost as much as checksumming a 64 KiB run in hardware.
fn combine(crc_a: u32, crc_b: u32, len_b: u64) -> u32 {
    mult_mod_p(x2n_mod_p(len_b, 3), crc_a) ^ crc_b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut c = Crc32c::new();
        c.update(&data[..13]);
        c.update(&data[13..500]);
        c.update(&data[500..]);
        assert_eq!(c.finish(), crc32c(&data));
        let mut c = Crc32c::new();
        c.update(&data[..13]);
        c.append_crc(crc32c(&data[13..]), data.len() - 13);
        assert_eq!(c.finish(), crc32c(&data));
    }

    #[test]
    fn combine_agrees_with_the_crate_at_every_length_class() {
        let data: Vec<u8> = (0..(1u32 << 20) + 4099)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for cut in [0usize, 1, 7, 512, 8192, 65_535, 1 << 20, data.len()] {
            let (a, b) = data.split_at(cut.min(data.len()));
            let ours = combine(crc32c(a), crc32c(b), b.len() as u64);
            assert_eq!(ours, crc32c(&data), "cut at {cut}");
            assert_eq!(
                ours,
                ::crc32c::crc32c_combine(crc32c(a), crc32c(b), b.len()),
                "cut at {cut}"
            );
        }
    }
}
