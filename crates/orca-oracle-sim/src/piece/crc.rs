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
        self.0 = ::crc32c::crc32c_combine(self.0, crc, len);
    }

    pub fn finish(self) -> u32 {
        self.0
    }
}

/// CRC-32C of one slice.
pub fn crc32c(data: &[u8]) -> u32 {
    ::crc32c::crc32c(data)
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
}
