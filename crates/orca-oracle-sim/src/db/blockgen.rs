//! Generation and mutation of datafile block contents.
//!
//! Blocks look like Oracle's: a `kcbh`, a transaction header with two ITL
//! slots, a data header, a row directory and rows packed from the end of the
//! block, with columns in Oracle's NUMBER / DATE / VARCHAR2 encodings. Row
//! values come from word lists and a cheap PRNG so that content is realistic
//! and compresses like real table data (zstd about 2-3x), deterministically
//! from the seed.
//!
//! Layout of a file: block 1 header, block 2 space header (0x1D), blocks
//! 3..8 space bitmaps (0x1E), then segments of [`SEG_BLOCKS`] blocks: a
//! segment header (0x23, or 0x01 for undo), two first-level bitmap blocks
//! (0x20), then table (0x06), index (0x06) or undo (0x02) blocks.

use orca_oracle::block::{BlockHeader, Rdba, block_type, finish_block};
use orca_oracle::{BlockError, Scn};

/// Blocks per simulated segment.
pub const SEG_BLOCKS: u32 = 512;
/// First block of the first segment.
pub const FIRST_SEG_BLOCK: u32 = 8;

const KTBBH: usize = 20;
const ITL0: usize = 44;
const ITL_LEN: usize = 24;
const KDBH: usize = ITL0 + 2 * ITL_LEN;
const TABLE_DIR: usize = KDBH + 14;
const ROW_DIR: usize = TABLE_DIR + 4;

/// splitmix64: fast, good enough, deterministic.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Mixes several values into one seed.
pub fn mix(parts: &[u64]) -> u64 {
    let mut r = Rng::new(0x5EED);
    let mut acc = 0u64;
    for p in parts {
        r.0 ^= p.wrapping_mul(0xA24B_AED4_963E_E407);
        acc ^= r.next_u64();
    }
    acc
}

/// What a tablespace holds, which decides its block mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Data dictionary (SYSTEM).
    System,
    /// Auxiliary repository (SYSAUX).
    Sysaux,
    /// Undo tablespace.
    Undo,
    /// Application data (USERS).
    Users,
}

impl Profile {
    /// The profile of a tablespace by its `contents` tag.
    pub fn from_contents(c: &str) -> Profile {
        match c {
            "SYSTEM" => Profile::System,
            "SYSAUX" => Profile::Sysaux,
            "UNDO" => Profile::Undo,
            _ => Profile::Users,
        }
    }
}

/// The kind of content a block number carries in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Block 1.
    FileHeader,
    /// Block 2.
    SpaceHeader,
    /// Blocks 3..8.
    SpaceBitmap,
    /// First block of a segment.
    SegmentHeader,
    /// Undo segment header.
    UndoHeader,
    /// Bitmap blocks after a segment header.
    SegmentBitmap,
    /// Rows of a table.
    Table,
    /// Index leaf entries.
    Index,
    /// Undo records.
    Undo,
}

/// The kind of block `block` is in a file of `profile`.
pub fn kind_of(profile: Profile, block: u32) -> Kind {
    match block {
        0 | 1 => Kind::FileHeader,
        2 => Kind::SpaceHeader,
        b if b < FIRST_SEG_BLOCK => Kind::SpaceBitmap,
        b => {
            let rel = b - FIRST_SEG_BLOCK;
            let seg = rel / SEG_BLOCKS;
            match (rel % SEG_BLOCKS, profile) {
                (0, Profile::Undo) => Kind::UndoHeader,
                (0, _) => Kind::SegmentHeader,
                (_, Profile::Undo) => Kind::Undo,
                (1 | 2, _) => Kind::SegmentBitmap,
                (_, Profile::Users) if seg % 5 == 3 => Kind::Index,
                (_, Profile::System | Profile::Sysaux) if seg % 3 == 2 => Kind::Index,
                _ => Kind::Table,
            }
        }
    }
}

fn type_byte(kind: Kind) -> u8 {
    match kind {
        Kind::FileHeader => block_type::FILE_HEADER,
        Kind::SpaceHeader => block_type::KTFB_HEADER,
        Kind::SpaceBitmap => block_type::KTFB_BITMAP,
        Kind::SegmentHeader => block_type::PAGETABLE_SEGMENT_HEADER,
        Kind::UndoHeader => block_type::UNDO_HEADER,
        Kind::SegmentBitmap => block_type::PAGETABLE_L1,
        Kind::Table | Kind::Index => block_type::DATA,
        Kind::Undo => block_type::UNDO,
    }
}

const FIRST: &[&str] = &[
    "JAMES",
    "MARY",
    "JOHN",
    "PATRICIA",
    "ROBERT",
    "JENNIFER",
    "MICHAEL",
    "LINDA",
    "WILLIAM",
    "ELIZABETH",
    "DAVID",
    "BARBARA",
    "RICHARD",
    "SUSAN",
    "JOSEPH",
    "JESSICA",
    "THOMAS",
    "SARAH",
    "CHARLES",
    "KAREN",
    "CHRISTOPHER",
    "NANCY",
    "DANIEL",
    "LISA",
    "MATTHEW",
    "BETTY",
    "ANTHONY",
    "MARGARET",
    "MARK",
    "SANDRA",
    "PAUL",
    "ASHLEY",
    "STEVEN",
    "KIMBERLY",
    "ANDREW",
    "EMILY",
    "KENNETH",
    "DONNA",
    "JOSHUA",
    "MICHELLE",
    "HANS",
    "INGRID",
    "PIERRE",
    "CLAIRE",
    "LUCA",
    "GIULIA",
    "JUAN",
    "CARMEN",
    "YUKI",
    "HIRO",
];
const LAST: &[&str] = &[
    "SMITH",
    "JOHNSON",
    "WILLIAMS",
    "BROWN",
    "JONES",
    "GARCIA",
    "MILLER",
    "DAVIS",
    "RODRIGUEZ",
    "MARTINEZ",
    "HERNANDEZ",
    "LOPEZ",
    "GONZALEZ",
    "WILSON",
    "ANDERSON",
    "THOMAS",
    "TAYLOR",
    "MOORE",
    "JACKSON",
    "MARTIN",
    "LEE",
    "PEREZ",
    "THOMPSON",
    "WHITE",
    "HARRIS",
    "SANCHEZ",
    "CLARK",
    "RAMIREZ",
    "LEWIS",
    "ROBINSON",
    "MUELLER",
    "SCHMIDT",
    "SCHNEIDER",
    "FISCHER",
    "WEBER",
    "DUBOIS",
    "MOREAU",
    "ROSSI",
    "RUSSO",
    "TANAKA",
];
const CITIES: &[&str] = &[
    "NEW YORK",
    "LOS ANGELES",
    "CHICAGO",
    "HOUSTON",
    "PHOENIX",
    "PHILADELPHIA",
    "SAN ANTONIO",
    "SAN DIEGO",
    "DALLAS",
    "SAN JOSE",
    "AUSTIN",
    "SEATTLE",
    "DENVER",
    "BOSTON",
    "LONDON",
    "PARIS",
    "BERLIN",
    "MADRID",
    "ROME",
    "ZURICH",
    "VIENNA",
    "AMSTERDAM",
    "BRUSSELS",
    "STOCKHOLM",
    "OSLO",
    "TOKYO",
    "OSAKA",
    "SYDNEY",
    "TORONTO",
    "MONTREAL",
];
const STATUS: &[&str] = &[
    "NEW",
    "PENDING",
    "SHIPPED",
    "DELIVERED",
    "CANCELLED",
    "RETURNED",
    "ON HOLD",
    "INVOICED",
];
const WORDS: &[&str] = &[
    "standard",
    "express",
    "delivery",
    "customer",
    "requested",
    "gift",
    "wrap",
    "invoice",
    "payment",
    "received",
    "credit",
    "card",
    "bank",
    "transfer",
    "warehouse",
    "north",
    "south",
    "east",
    "west",
    "priority",
    "shipping",
    "backorder",
    "partial",
    "complete",
    "address",
    "changed",
    "contact",
    "phone",
    "email",
    "confirmed",
    "discount",
    "applied",
    "coupon",
    "loyalty",
    "member",
    "return",
    "label",
    "printed",
    "fragile",
    "handle",
    "with",
    "care",
    "signature",
    "required",
    "leave",
    "at",
    "door",
    "office",
    "hours",
    "weekend",
    "morning",
    "evening",
    "pallet",
    "carton",
    "box",
    "envelope",
    "tracking",
    "number",
    "carrier",
    "ground",
    "air",
    "freight",
    "customs",
    "cleared",
    "duty",
    "paid",
    "tax",
    "exempt",
    "net",
    "thirty",
    "days",
    "terms",
    "order",
    "line",
    "item",
    "quantity",
    "unit",
    "price",
    "total",
    "subtotal",
    "the",
    "and",
    "for",
    "to",
    "of",
    "on",
    "in",
    "by",
];
const OWNERS: &[&str] = &[
    "SYS",
    "SYS",
    "SYS",
    "SYSTEM",
    "DBSNMP",
    "OUTLN",
    "XDB",
    "WMSYS",
    "CTXSYS",
    "MDSYS",
    "ORDSYS",
    "AUDSYS",
    "GSMADMIN_INTERNAL",
    "APPQOSSYS",
];
const OBJ_PREFIX: &[&str] = &[
    "I_",
    "SYS_C",
    "WRH$_",
    "WRI$_",
    "WRM$_",
    "OBJ$",
    "COL$",
    "TAB$",
    "IND$",
    "SEG$",
    "TS$",
    "USER$",
    "DBA_",
    "ALL_",
    "USER_",
    "V_$",
    "GV_$",
    "SYS_LOB",
    "SYS_IL",
    "KU$_",
    "AQ$_",
    "SCHEDULER$_",
    "OPTSTAT_",
    "SQLOBJ$",
];
const OBJ_WORD: &[&str] = &[
    "SQLSTAT",
    "SYSSTAT",
    "SEG_STAT",
    "ACTIVE_SESSION_HISTORY",
    "SNAPSHOT",
    "EVENT_HISTOGRAM",
    "PARAMETER",
    "LATCH",
    "SGASTAT",
    "PGASTAT",
    "OBJECTS",
    "TABLES",
    "INDEXES",
    "COLUMNS",
    "USERS",
    "ROLES",
    "PRIVS",
    "JOBS",
    "PROGRAMS",
    "WINDOWS",
    "HIST_HEAD",
    "HISTGRM",
    "TAB_STATS",
    "IND_STATS",
    "FILESTAT",
    "TEMPSTAT",
    "UNDOSTAT",
    "WAITSTAT",
    "ENQUEUE",
    "SERVICE",
];

/// Appends an Oracle NUMBER: a non-negative integer with an optional
/// fraction in hundredths. Returns the encoded length.
fn put_number(out: &mut Vec<u8>, int: u64, hundredths: u8) {
    let start = out.len();
    out.push(0);
    if int == 0 && hundredths == 0 {
        out.push(0x80);
        out[start] = 1;
        return;
    }
    let mut digits = [0u8; 12];
    let mut n = 0;
    let mut v = int;
    while v > 0 {
        digits[n] = (v % 100) as u8;
        v /= 100;
        n += 1;
    }
    digits[..n].reverse();
    let exp: i32 = n as i32 - 1;
    let mut all: Vec<u8> = digits[..n].to_vec();
    all.push(hundredths);
    let lead_zeros = all.iter().take_while(|&&d| d == 0).count();
    let exp = exp - lead_zeros as i32;
    let body = &all[lead_zeros..];
    let trail = body.iter().rev().take_while(|&&d| d == 0).count();
    let body = &body[..body.len() - trail];
    out.push((0xC1i32 + exp) as u8);
    out.extend(body.iter().map(|d| d + 1));
    out[start] = (out.len() - start - 1) as u8;
}

fn put_date(out: &mut Vec<u8>, y: u32, mo: u32, d: u32, h: u32, mi: u32, s: u32) {
    out.push(7);
    out.extend_from_slice(&[
        (y / 100 + 100) as u8,
        (y % 100 + 100) as u8,
        mo as u8,
        d as u8,
        (h + 1) as u8,
        (mi + 1) as u8,
        (s + 1) as u8,
    ]);
}

fn put_text(out: &mut Vec<u8>, parts: &[&str], sep: &str) {
    let start = out.len();
    out.push(0);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(sep.as_bytes());
        }
        out.extend_from_slice(p.as_bytes());
    }
    let len = (out.len() - start - 1).min(250);
    out.truncate(start + 1 + len);
    out[start] = len as u8;
}

fn random_date(rng: &mut Rng, out: &mut Vec<u8>) {
    let r = rng.next_u64();
    let y = 2019 + (r % 7) as u32;
    let mo = 1 + ((r >> 8) % 12) as u32;
    let d = 1 + ((r >> 16) % 28) as u32;
    let h = ((r >> 24) % 24) as u32;
    let mi = ((r >> 32) % 60) as u32;
    let s = ((r >> 40) % 60) as u32;
    put_date(out, y, mo, d, h, mi, s);
}

/// Appends one row (flag, lock, column count, columns) for a profile.
fn make_row(profile: Profile, id: u64, rng: &mut Rng, out: &mut Vec<u8>) {
    out.clear();
    match profile {
        Profile::System | Profile::Sysaux => {
            out.extend_from_slice(&[0x2C, 0, 8]);
            put_number(out, id, 0);
            put_number(out, id + rng.below(3), 0);
            random_date(rng, out);
            put_text(out, &[rng.pick(OWNERS)], "");
            let pre = rng.pick(OBJ_PREFIX);
            let word = rng.pick(OBJ_WORD);
            if pre == "SYS_C" {
                let n = format!("SYS_C{:07}", rng.below(30000));
                put_text(out, &[&n], "");
            } else {
                put_text(out, &[pre, word], "");
            }
            put_number(out, [1, 2, 2, 2, 4, 5, 6, 9, 13][rng.below(9) as usize], 0);
            put_number(out, 1, 0);
            // SPARE1-style flags: the least predictable column of a dictionary row.
            put_number(out, rng.below(1 << 24), 0);
        }
        Profile::Users | Profile::Undo => {
            out.extend_from_slice(&[0x2C, 0, 8]);
            put_number(out, id, 0);
            put_number(out, 1000 + rng.below(60_000), 0);
            random_date(rng, out);
            put_text(out, &[rng.pick(STATUS)], "");
            put_number(out, rng.below(5_000), rng.below(100) as u8);
            put_text(out, &[rng.pick(FIRST), rng.pick(LAST)], " ");
            put_text(out, &[rng.pick(CITIES)], "");
            let n = 2 + rng.below(5) as usize;
            let mut words: [&str; 8] = [""; 8];
            for w in words.iter_mut().take(n) {
                *w = rng.pick(WORDS);
            }
            put_text(out, &words[..n], " ");
        }
    }
}

fn make_index_entry(key: u64, rdba: u32, slot: u16, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0x00, 0, 2]);
    put_number(out, key, 0);
    out.push(6);
    out.extend_from_slice(&rdba.to_be_bytes());
    out.extend_from_slice(&slot.to_be_bytes());
}

fn write_txn_header(buf: &mut [u8], obj: u32, scn: Scn, rng: &mut Rng) {
    buf[KTBBH] = 1;
    buf[KTBBH + 4..KTBBH + 8].copy_from_slice(&obj.to_le_bytes());
    let csc = Scn(scn.0.saturating_sub(rng.below(5000) + 1));
    buf[KTBBH + 8..KTBBH + 12].copy_from_slice(&csc.base().to_le_bytes());
    buf[KTBBH + 12..KTBBH + 14].copy_from_slice(&csc.wrap().to_le_bytes());
    buf[KTBBH + 16] = 2;
    buf[KTBBH + 17] = 0x32;
    for i in 0..2 {
        let itl = ITL0 + i * ITL_LEN;
        let usn = (rng.below(10) + 1) as u16;
        buf[itl..itl + 2].copy_from_slice(&usn.to_le_bytes());
        buf[itl + 2..itl + 4].copy_from_slice(&(rng.below(34) as u16).to_le_bytes());
        buf[itl + 4..itl + 8].copy_from_slice(&((rng.below(4000) + 1) as u32).to_le_bytes());
        buf[itl + 8..itl + 12]
            .copy_from_slice(&((0x00C0_0000 | rng.below(1 << 16)) as u32).to_le_bytes());
        buf[itl + 16..itl + 18].copy_from_slice(&0x8000u16.to_le_bytes());
        buf[itl + 20..itl + 24].copy_from_slice(&csc.base().to_le_bytes());
    }
}

/// Fills a row-structured block (table, index, undo): transaction header,
/// data header, row directory, rows from the end, 10% left free.
fn fill_rows(buf: &mut [u8], kind: Kind, profile: Profile, block: u32, rdba: u32, rng: &mut Rng) {
    let bs = buf.len();
    let limit_free = bs / 10;
    let mut row = Vec::with_capacity(256);
    let mut top = bs - 4;
    let mut nrow: usize = 0;
    let base_id = u64::from(block) * 80 + rng.below(40);
    loop {
        match kind {
            Kind::Index => make_index_entry(
                base_id * 3 + nrow as u64 * 3,
                rdba.wrapping_add(rng.below(64) as u32),
                (rng.below(80)) as u16,
                &mut row,
            ),
            _ => make_row(profile, base_id + nrow as u64, rng, &mut row),
        }
        let dir_end = ROW_DIR + 2 * (nrow + 1);
        if top < row.len() || top - row.len() < dir_end + limit_free {
            break;
        }
        top -= row.len();
        buf[top..top + row.len()].copy_from_slice(&row);
        let off = (top - KDBH) as u16;
        buf[ROW_DIR + 2 * nrow..ROW_DIR + 2 * nrow + 2].copy_from_slice(&off.to_le_bytes());
        nrow += 1;
    }
    let dir_end = ROW_DIR + 2 * nrow;
    let avsp = (top - dir_end) as u16;
    buf[KDBH] = 0;
    buf[KDBH + 1] = 1;
    buf[KDBH + 2..KDBH + 4].copy_from_slice(&(nrow as u16).to_le_bytes());
    buf[KDBH + 4..KDBH + 6].copy_from_slice(&0xFFFFu16.to_le_bytes());
    buf[KDBH + 6..KDBH + 8].copy_from_slice(&((dir_end - KDBH) as u16).to_le_bytes());
    buf[KDBH + 8..KDBH + 10].copy_from_slice(&((top - KDBH) as u16).to_le_bytes());
    buf[KDBH + 10..KDBH + 12].copy_from_slice(&avsp.to_le_bytes());
    buf[KDBH + 12..KDBH + 14].copy_from_slice(&avsp.to_le_bytes());
    buf[TABLE_DIR..TABLE_DIR + 2].copy_from_slice(&0u16.to_le_bytes());
    buf[TABLE_DIR + 2..TABLE_DIR + 4].copy_from_slice(&(nrow as u16).to_le_bytes());
}

fn fill_bitmap(buf: &mut [u8], used_fraction: u64, rng: &mut Rng) {
    let bs = buf.len();
    let body = &mut buf[64..bs - 4];
    let used = body.len() * used_fraction.min(100) as usize / 100;
    body[..used].fill(0xFF);
    // A few holes where extents were freed.
    for _ in 0..(used / 512) {
        let i = rng.below(used.max(1) as u64) as usize;
        body[i] = (rng.next_u64() & 0xFF) as u8;
    }
}

fn fill_segment_header(buf: &mut [u8], block: u32, rdba: u32, rng: &mut Rng) {
    let bs = buf.len();
    let extents = 8 + rng.below(56) as u32;
    buf[24..28].copy_from_slice(&extents.to_le_bytes());
    buf[28..32].copy_from_slice(&(extents * 8).to_le_bytes());
    let mut p = 96;
    for e in 0..extents {
        if p + 8 > bs - 4 {
            break;
        }
        let dba = rdba.wrapping_add(e * 8).wrapping_sub(block % 8);
        buf[p..p + 4].copy_from_slice(&dba.to_le_bytes());
        buf[p + 4..p + 8].copy_from_slice(&8u32.to_le_bytes());
        p += 8;
    }
}

/// Formats block `block` of a file (never block 0 or 1): content for its
/// kind, header, tail and checksum. `buf` is one block.
#[allow(clippy::too_many_arguments)]
pub fn format_block(
    buf: &mut [u8],
    profile: Profile,
    rfile: u32,
    block: u32,
    obj_base: u32,
    scn: Scn,
    seq: u8,
    rng: &mut Rng,
) -> Result<(), BlockError> {
    buf.fill(0);
    let kind = kind_of(profile, block);
    let rdba = Rdba::new(rfile, block)?;
    let seg = block.saturating_sub(FIRST_SEG_BLOCK) / SEG_BLOCKS;
    let obj = obj_base + seg;
    match kind {
        Kind::FileHeader => {
            return Err(BlockError::InvalidField {
                field: "block kind",
                value: "the file header is built from DatafileHeader".into(),
            });
        }
        Kind::SpaceHeader => {
            buf[24..28].copy_from_slice(&(block.max(1)).to_le_bytes());
            buf[28..32].copy_from_slice(&(rng.below(1 << 20) as u32).to_le_bytes());
            fill_bitmap(buf, 10, rng);
        }
        Kind::SpaceBitmap => fill_bitmap(buf, 60, rng),
        Kind::SegmentHeader | Kind::UndoHeader => {
            write_txn_header(buf, obj, scn, rng);
            fill_segment_header(buf, block, rdba.0, rng);
        }
        Kind::SegmentBitmap => {
            write_txn_header(buf, obj, scn, rng);
            fill_bitmap(buf, 40, rng);
        }
        Kind::Table | Kind::Index | Kind::Undo => {
            write_txn_header(buf, obj, scn, rng);
            fill_rows(buf, kind, profile, block, rdba.0, rng);
        }
    }
    let h = BlockHeader::new(type_byte(kind), buf.len(), rdba, scn, seq)?;
    finish_block(buf, &h)
}

/// Replaces the content of a formatted block with random bytes (incompressible, as encrypted
/// or already compressed table data is), keeping its `kcbh` and, for row blocks, the headers
/// and row directory a later [`change_block`] walks: the block still passes header, tail and
/// checksum checks.
pub fn randomize_block(buf: &mut [u8], rng: &mut Rng) -> Result<(), BlockError> {
    let h = BlockHeader::parse(buf)?;
    let bs = buf.len();
    let row_block = matches!(h.block_type, block_type::DATA | block_type::UNDO);
    let keep = if row_block {
        let nrow = usize::from(u16::from_le_bytes([buf[KDBH + 2], buf[KDBH + 3]]));
        (ROW_DIR + 2 * nrow).min(bs - 4)
    } else {
        KTBBH
    };
    for word in buf[keep..bs - 4].chunks_mut(8) {
        let v = rng.next_u64().to_le_bytes();
        word.copy_from_slice(&v[..word.len()]);
    }
    finish_block(buf, &h)
}

/// Walks the columns of the row at `off`; returns the byte ranges of the
/// first `n` non-null column values.
fn row_columns(buf: &[u8], off: usize, n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(n);
    if off + 3 > buf.len() - 4 {
        return out;
    }
    let cc = usize::from(buf[off + 2]);
    let mut p = off + 3;
    for _ in 0..cc.min(n) {
        let Some(&len) = buf.get(p) else { break };
        if len == 0xFF {
            p += 1;
            continue;
        }
        let start = p + 1;
        let end = start + usize::from(len);
        if end > buf.len() - 4 {
            break;
        }
        out.push((start, end));
        p = end;
    }
    out
}

/// Changes a formatted block the way DML would (updates a few rows in place,
/// or flips bitmap bits), then stamps it with `scn`.
pub fn change_block(buf: &mut [u8], scn: Scn, rng: &mut Rng) -> Result<(), BlockError> {
    let h = BlockHeader::parse(buf)?;
    let bs = buf.len();
    let row_block = matches!(h.block_type, block_type::DATA | block_type::UNDO);
    let nrow = if row_block {
        usize::from(u16::from_le_bytes([buf[KDBH + 2], buf[KDBH + 3]]))
    } else {
        0
    };
    if nrow > 0 && ROW_DIR + 2 * nrow < bs {
        let changes = 1 + rng.below(4) as usize;
        for _ in 0..changes {
            let r = rng.below(nrow as u64) as usize;
            let off = usize::from(u16::from_le_bytes([
                buf[ROW_DIR + 2 * r],
                buf[ROW_DIR + 2 * r + 1],
            ])) + KDBH;
            if off + 3 >= bs - 4 {
                continue;
            }
            buf[off + 1] = 1;
            let cols = row_columns(buf, off, 5);
            // Column 2 (a NUMBER or the index key) gets new digits, column 3
            // (a DATE in table rows, the rowid in index entries) a new value.
            if let Some(&(s, e)) = cols.get(1)
                && e > s + 1
            {
                for b in &mut buf[s + 1..e] {
                    *b = 2 + rng.below(99) as u8;
                }
            }
            if let Some(&(s, e)) = cols.get(2) {
                for b in &mut buf[s..e] {
                    let v = rng.next_u64() as u8;
                    *b = if e - s == 7 {
                        (*b & 0xF8) | (v & 0x07)
                    } else {
                        v
                    };
                }
            }
        }
        let itl = ITL0;
        buf[itl + 20..itl + 24].copy_from_slice(&scn.base().to_le_bytes());
        buf[itl + 4..itl + 8].copy_from_slice(&((rng.below(4000) + 1) as u32).to_le_bytes());
    } else {
        let n = 1 + rng.below(8) as usize;
        for _ in 0..n {
            let i = 64 + rng.below((bs - 68) as u64) as usize;
            buf[i] ^= 1 << rng.below(8);
        }
    }
    let mut nh = h;
    nh.seq = if h.scn == scn { h.seq % 0xFE + 1 } else { 1 };
    nh.scn = scn;
    finish_block(buf, &nh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orca_oracle::block::check_block;

    #[test]
    fn numbers_encode_like_oracle() {
        let enc = |i, h| {
            let mut v = Vec::new();
            put_number(&mut v, i, h);
            v
        };
        assert_eq!(enc(0, 0), vec![1, 0x80]);
        assert_eq!(enc(1, 0), vec![2, 0xC1, 2]);
        assert_eq!(enc(100, 0), vec![2, 0xC2, 2]);
        assert_eq!(enc(1234, 56), vec![4, 0xC2, 13, 35, 57]);
        assert_eq!(enc(0, 5), vec![2, 0xC0, 6]);
    }

    #[test]
    fn every_kind_is_valid_and_changes_stay_valid() {
        let mut rng = Rng::new(1);
        let mut buf = vec![0u8; 8192];
        for profile in [
            Profile::System,
            Profile::Sysaux,
            Profile::Undo,
            Profile::Users,
        ] {
            for block in [2, 3, 8, 9, 10, 100, 8 + 512 * 3 + 7, 8 + 512 * 2 + 20] {
                format_block(&mut buf, profile, 4, block, 70_000, Scn(1000), 1, &mut rng).unwrap();
                let rdba = Rdba::new(4, block).unwrap();
                check_block(&buf, Some(rdba)).unwrap();
                let before = buf.clone();
                change_block(&mut buf, Scn(2000), &mut rng).unwrap();
                let h = check_block(&buf, Some(rdba)).unwrap();
                assert_eq!(h.scn, Scn(2000));
                assert_ne!(before, buf);
            }
        }
    }

    #[test]
    fn randomized_blocks_stay_valid_and_do_not_compress() {
        let mut rng = Rng::new(7);
        let mut all = Vec::new();
        for block in FIRST_SEG_BLOCK..FIRST_SEG_BLOCK + 64 {
            let mut buf = vec![0u8; 8192];
            format_block(
                &mut buf,
                Profile::Users,
                4,
                block,
                70_000,
                Scn(500),
                1,
                &mut rng,
            )
            .unwrap();
            randomize_block(&mut buf, &mut rng).unwrap();
            check_block(&buf, None).unwrap();
            change_block(&mut buf, Scn(600), &mut rng).unwrap();
            check_block(&buf, None).unwrap();
            all.extend_from_slice(&buf);
        }
        let packed = zstd::bulk::compress(&all, 3).unwrap();
        assert!(
            packed.len() * 100 > all.len() * 95,
            "{} of {}",
            packed.len(),
            all.len()
        );
    }

    #[test]
    fn deterministic() {
        let mut a = vec![0u8; 8192];
        let mut b = vec![0u8; 8192];
        format_block(
            &mut a,
            Profile::Users,
            4,
            50,
            1,
            Scn(5),
            1,
            &mut Rng::new(9),
        )
        .unwrap();
        format_block(
            &mut b,
            Profile::Users,
            4,
            50,
            1,
            Scn(5),
            1,
            &mut Rng::new(9),
        )
        .unwrap();
        assert_eq!(a, b);
    }
}
