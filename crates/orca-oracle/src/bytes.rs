//! A bounds-checked reader of little-endian fixed layouts.
//!
//! Decoders of packs, manifests, pieces and headers read fields one after the
//! other; every read checks the bounds, so damaged or truncated input gives a
//! [`Truncated`] error that the caller turns into its own "corrupt" error,
//! never a panic. A failed read leaves the position where it was.

/// A read wanted more bytes than the input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("truncated at offset {offset}: wanted {wanted} bytes, {available} left")]
pub struct Truncated {
    /// Where the read started, from the start of the reader's input.
    pub offset: usize,
    /// Bytes the read needed.
    pub wanted: usize,
    /// Bytes the input still held.
    pub available: usize,
}

/// Reads fields in order from a byte slice.
#[derive(Debug, Clone)]
pub struct LeReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> LeReader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        LeReader { buf, pos: 0 }
    }

    /// Bytes read so far: the offset of the next read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes read so far (what a checksum or MAC in front of the next
    /// field covers).
    pub fn consumed(&self) -> &'a [u8] {
        self.buf.get(..self.pos).unwrap_or_default()
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.unread().len()
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        let out = self.unread().get(..n).ok_or_else(|| self.short(n))?;
        self.pos += n;
        Ok(out)
    }

    /// Steps over `n` bytes (reserved or already-checked fields).
    pub fn skip(&mut self, n: usize) -> Result<(), Truncated> {
        self.take(n).map(|_| ())
    }

    /// The next `N` bytes as an array (ids, magics, nonces).
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let out = *self
            .unread()
            .first_chunk::<N>()
            .ok_or_else(|| self.short(N))?;
        self.pos += N;
        Ok(out)
    }

    /// The next byte.
    pub fn u8(&mut self) -> Result<u8, Truncated> {
        self.array::<1>().map(|[b]| b)
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> Result<u16, Truncated> {
        self.array().map(u16::from_le_bytes)
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> Result<u32, Truncated> {
        self.array().map(u32::from_le_bytes)
    }

    /// The next eight bytes, little-endian.
    pub fn u64(&mut self) -> Result<u64, Truncated> {
        self.array().map(u64::from_le_bytes)
    }

    /// Everything not read yet; the reader is then at the end.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = self.unread();
        self.pos = self.buf.len();
        out
    }

    fn unread(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn short(&self, wanted: usize) -> Truncated {
        Truncated {
            offset: self.pos,
            wanted,
            available: self.remaining(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fields_come_out_in_order_little_endian() {
        let buf = [
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
            0x0f, 0x10, 0x11,
        ];
        let mut r = LeReader::new(&buf);
        assert_eq!(r.u8(), Ok(0x01));
        assert_eq!(r.u16(), Ok(0x0302));
        assert_eq!(r.u32(), Ok(0x0706_0504));
        assert_eq!(r.u64(), Ok(0x0f0e_0d0c_0b0a_0908));
        assert_eq!(r.position(), 15);
        assert_eq!(r.consumed(), &buf[..15]);
        assert_eq!(r.array::<1>(), Ok([0x10]));
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.rest(), &[0x11]);
        assert_eq!(r.rest(), &[] as &[u8]);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn a_short_read_names_where_and_how_much_and_moves_nothing() {
        let mut r = LeReader::new(&[1, 2, 3, 4, 5, 6]);
        r.skip(4).unwrap();
        let e = r.u32().unwrap_err();
        assert_eq!(
            e,
            Truncated {
                offset: 4,
                wanted: 4,
                available: 2
            }
        );
        assert_eq!(
            e.to_string(),
            "truncated at offset 4: wanted 4 bytes, 2 left"
        );
        assert_eq!(r.position(), 4);
        assert_eq!(r.u16(), Ok(0x0605));
        assert!(r.u8().is_err());
        assert!(r.take(usize::MAX).is_err());
        assert!(r.skip(1).is_err());
        assert_eq!(r.take(0), Ok(&[] as &[u8]));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Take(usize),
        Skip(usize),
        U8,
        U16,
        U32,
        U64,
        Array32,
        Rest,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..64).prop_map(Op::Take),
            any::<usize>().prop_map(Op::Skip),
            Just(Op::U8),
            Just(Op::U16),
            Just(Op::U32),
            Just(Op::U64),
            Just(Op::Array32),
            Just(Op::Rest),
        ]
    }

    proptest! {
        /// Any sequence of reads on any input either succeeds, consuming exactly
        /// what it asked for, or fails leaving the position alone; nothing panics.
        #[test]
        fn never_panics_and_never_overreads(
            data in proptest::collection::vec(any::<u8>(), 0..128),
            ops in proptest::collection::vec(op(), 0..32),
        ) {
            let mut r = LeReader::new(&data);
            for op in ops {
                let before = r.position();
                let (ok, wanted) = match op {
                    Op::Take(n) => (r.take(n).is_ok(), n),
                    Op::Skip(n) => (r.skip(n).is_ok(), n),
                    Op::U8 => (r.u8().is_ok(), 1),
                    Op::U16 => (r.u16().is_ok(), 2),
                    Op::U32 => (r.u32().is_ok(), 4),
                    Op::U64 => (r.u64().is_ok(), 8),
                    Op::Array32 => (r.array::<32>().is_ok(), 32),
                    Op::Rest => (true, r.rest().len()),
                };
                prop_assert_eq!(ok, wanted <= data.len() - before);
                let moved = if ok { wanted } else { 0 };
                prop_assert_eq!(r.position(), before + moved);
                prop_assert_eq!(r.remaining(), data.len() - r.position());
                prop_assert_eq!(r.consumed(), &data[..r.position()]);
            }
        }
    }
}
