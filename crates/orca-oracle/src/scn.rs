//! System change numbers (SCN) and their on-disk `kscn` encoding.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A system change number. Oracle keeps SCNs in 48 bits: a 32-bit base and a
/// 16-bit wrap whose top bit flags a 12c+ "big SCN", so classic SCNs use 47
/// bits. [`Scn::read_kscn`] decodes big SCNs; the simulator never makes them.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Scn(pub u64);

/// Byte length of a `kscn` on disk: base ub4, wrap ub2, 2 bytes extension.
pub const KSCN_LEN: usize = 8;

impl Scn {
    /// Largest SCN of the classic base+wrap layout (wrap top bit clear).
    pub const MAX: Scn = Scn((1 << 47) - 1);

    /// Builds an SCN from its base (low 32 bits) and wrap (next 16 bits).
    pub fn from_parts(base: u32, wrap: u16) -> Scn {
        Scn((u64::from(wrap) << 32) | u64::from(base))
    }

    /// Low 32 bits (`bas_kcbh`, `kscnbas`).
    pub fn base(self) -> u32 {
        (self.0 & 0xFFFF_FFFF) as u32
    }

    /// Bits 32..48 (`wrp_kcbh`, `kscnwrp`).
    pub fn wrap(self) -> u16 {
        ((self.0 >> 32) & 0xFFFF) as u16
    }

    /// Whether the SCN fits the classic base+wrap layout.
    pub fn is_classic(self) -> bool {
        self <= Scn::MAX
    }

    /// Decodes an 8-byte `kscn` (little-endian). Returns `None` for the
    /// all-0xFF "no SCN" marker and for slices shorter than 8 bytes.
    pub fn read_kscn(bytes: &[u8]) -> Option<Scn> {
        let b: &[u8; KSCN_LEN] = bytes.get(..KSCN_LEN)?.try_into().ok()?;
        if b.iter().all(|&x| x == 0xFF) {
            return None;
        }
        let base = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let wrap = u16::from_le_bytes([b[4], b[5]]);
        let ext = u16::from_le_bytes([b[6], b[7]]);
        if wrap & 0x8000 != 0 {
            // Big SCN (12c+): the wrap's top bit flags a 64-bit value whose
            // bits 32..48 sit in the extension and 48..63 in the wrap.
            return Some(Scn(u64::from(base)
                | (u64::from(ext) << 32)
                | (u64::from(wrap & 0x7FFF) << 48)));
        }
        Some(Scn::from_parts(base, wrap))
    }

    /// Encodes the SCN as an 8-byte `kscn`. SCNs beyond [`Scn::MAX`] use the
    /// big SCN layout so that [`Scn::read_kscn`] round-trips them.
    pub fn write_kscn(self, out: &mut [u8; KSCN_LEN]) {
        out[0..4].copy_from_slice(&self.base().to_le_bytes());
        if self.is_classic() {
            out[4..6].copy_from_slice(&self.wrap().to_le_bytes());
            out[6..8].copy_from_slice(&[0, 0]);
        } else {
            let wrap = (((self.0 >> 48) & 0x7FFF) as u16) | 0x8000;
            let ext = ((self.0 >> 32) & 0xFFFF) as u16;
            out[4..6].copy_from_slice(&wrap.to_le_bytes());
            out[6..8].copy_from_slice(&ext.to_le_bytes());
        }
    }

    /// Writes the "no SCN" marker (all 0xFF), used e.g. for the next SCN of
    /// the current online log.
    pub fn write_none(out: &mut [u8; KSCN_LEN]) {
        *out = [0xFF; KSCN_LEN];
    }
}

impl fmt::Display for Scn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for Scn {
    fn from(v: u64) -> Self {
        Scn(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parts() {
        let s = Scn::from_parts(0x3e20db7a, 0x0001);
        assert_eq!(s.0, 0x1_3e20_db7a);
        assert_eq!(s.base(), 0x3e20db7a);
        assert_eq!(s.wrap(), 1);
    }

    #[test]
    fn none_marker() {
        let mut b = [0u8; 8];
        Scn::write_none(&mut b);
        assert_eq!(Scn::read_kscn(&b), None);
        assert_eq!(Scn::read_kscn(&b[..4]), None);
    }

    proptest! {
        #[test]
        fn kscn_roundtrip(v in 0u64..(1u64 << 63)) {
            let mut b = [0u8; 8];
            Scn(v).write_kscn(&mut b);
            prop_assume!(b != [0xFF; 8]);
            prop_assert_eq!(Scn::read_kscn(&b), Some(Scn(v)));
        }
    }
}
