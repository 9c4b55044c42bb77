//! Issue 22's memory target: a channel backs up and restores a stream many times larger than
//! its memory bound, then a second day of it stored as deltas, without its peak RSS growing
//! past the bound. Each run is a child process
//! (this test binary, re-run on the ignored `channel` test) so that its `VmHWM` is the
//! channel's alone; a negative control shows the measurement sees a deliberate allocation.

// Only the repository set-up of the shared support is used here.
#[allow(dead_code)]
mod support;

use std::process::Command;

use orca_oracle::Scn;
use orca_oracle::block::{BlockHeader, Rdba, finish_block};
use orca_sbt::session::{ObjectInfo, SBT_ERROR_EOF, Session};
use orca_sbt::trace::Trace;

/// Issue 22: peak RSS ≤ 64 MiB per channel.
const BOUND_MIB: u64 = 64;
/// Four times the bound, so that a buffer growing with the stream cannot hide.
const STREAM_MIB: usize = 256;
/// RMAN's buffer: each `sbtwrite2` / `sbtread2` hands this much.
const BUF: usize = 256 << 10;
const BLOCK: usize = 8192;
const PASSWORD: &str = "memory-test";
/// A day changes one block in this many: about 1%, so the second backup is deltas.
const CHANGED_EVERY: u32 = 97;

/// A peak RSS figure of the current process, in KiB (`VmHWM` in /proc/self/status).
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Datafile 5's blocks from `first`, into `buf`, as of `day`: a valid header and checksum,
/// half of each block varying (compressible about 2:1, as datafiles are), no two blocks
/// alike; from one day to the next, one block in [`CHANGED_EVERY`] changes.
fn fill_blocks(buf: &mut [u8], first: u32, day: u64) {
    for (k, b) in buf.chunks_exact_mut(BLOCK).enumerate() {
        let no = first + u32::try_from(k).unwrap();
        let version = if no.is_multiple_of(CHANGED_EVERY) {
            day
        } else {
            0
        };
        let mut x = (u64::from(no) ^ version << 40).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for w in b[..BLOCK / 2].chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        b[BLOCK / 2..].fill(0);
        let h = BlockHeader::new(6, BLOCK, Rdba::new(5, no).unwrap(), Scn(7), 1).unwrap();
        finish_block(b, &h).unwrap();
    }
}

/// One channel's backup and restore of the stream on two days, checked byte for byte; with `ballast_mib`
/// MiB allocated and touched on the way (the negative control). Prints the peak RSS.
fn run_channel(dir: &std::path::Path, ballast_mib: usize) {
    let before = vm_hwm_kib();
    let mut s = Session::new(Trace::new(dir.join("sbtio.log")));
    let env = format!(
        "ENV=(ORCA_REPO={},ORCA_PASSWORD={PASSWORD},ORCA_CACHE_DIR={})",
        dir.join("repo").display(),
        dir.join("cache").display()
    );
    s.command(&env).unwrap();
    s.init().unwrap();
    let blocks_per_buf = u32::try_from(BUF / BLOCK).unwrap();
    let bufs = u32::try_from((STREAM_MIB << 20) / BUF).unwrap();
    let mut buf = vec![0u8; BUF];
    // A datafile's later section (no header block), with the DBID RMAN passes: the second
    // day finds the first's fingerprints and stores deltas, which a restore rebuilds.
    let info = ObjectInfo {
        dbid: Some(0x0DB1D),
        file_type: Some(1),
        ..ObjectInfo::default()
    };
    let mut ballast = Vec::new();
    for day in 0..2u64 {
        let piece = format!("mem-piece-{day}");
        s.backup(&piece, info.clone(), BUF).unwrap();
        for i in 0..bufs {
            fill_blocks(&mut buf, 1 + i * blocks_per_buf, day);
            s.write(&buf).unwrap();
        }
        if ballast.is_empty() {
            ballast = vec![1u8; ballast_mib << 20];
        }
        s.close(false).unwrap();
        s.restore(&piece, BUF).unwrap();
        let mut want = vec![0u8; BUF];
        let mut i = 0;
        loop {
            match s.read(&mut buf) {
                Ok(()) => {}
                Err(e) if e.code == SBT_ERROR_EOF => break,
                Err(e) => panic!("sbtread2: {}", e.text),
            }
            fill_blocks(&mut want, 1 + i * blocks_per_buf, day);
            assert!(buf == want, "day {day}: buffer {i} restored differently");
            i += 1;
        }
        assert_eq!(i, bufs, "day {day}: the whole stream comes back");
        s.close(false).unwrap();
    }
    s.end();
    assert!(ballast.iter().all(|&b| b == 1));
    let log = std::fs::read_to_string(dir.join("sbtio.log")).unwrap();
    let deltas = log
        .lines()
        .find(|l| l.contains("piece mem-piece-1 committed:"))
        .and_then(|l| l.split("delta_chunks=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .map(|v| v.parse::<u64>().unwrap());
    assert!(deltas > Some(0), "the second day stored no deltas: {log}");
    println!("PEAK_KIB before={before} after={}", vm_hwm_kib());
}

/// The child's side: run by [`measure`], not on its own.
#[test]
#[ignore = "a child process of the memory tests"]
fn channel() {
    let dir = std::env::var("ORCA_MEM_TEST_DIR").unwrap();
    let ballast = std::env::var("ORCA_MEM_TEST_BALLAST_MB").map_or(0, |v| v.parse().unwrap());
    run_channel(std::path::Path::new(&dir), ballast);
}

/// The peak RSS of a child channel backing up and restoring the stream, in MiB.
fn measure(ballast_mib: u64) -> u64 {
    let tmp = tempfile::tempdir().unwrap();
    support::init_repo(&tmp.path().join("repo"), PASSWORD);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "channel",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ORCA_MEM_TEST_DIR", tmp.path())
        .env("ORCA_MEM_TEST_BALLAST_MB", ballast_mib.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after: u64 = stdout
        .lines()
        .find_map(|l| l.split("PEAK_KIB ").nth(1))
        .and_then(|l| l.split("after=").nth(1))
        .unwrap_or_else(|| panic!("the child reports no peak: {stdout}"))
        .trim()
        .parse()
        .unwrap();
    eprintln!(
        "channel with {ballast_mib} MiB of ballast: peak RSS {} MiB",
        after >> 10
    );
    after >> 10
}

#[test]
fn a_channel_stays_under_its_memory_bound_whatever_the_stream_size() {
    let peak = measure(0);
    assert!(
        peak <= BOUND_MIB,
        "a channel peaked at {peak} MiB backing up and restoring {STREAM_MIB} MiB; the bound is {BOUND_MIB} MiB"
    );
}

#[test]
fn the_measurement_sees_a_large_allocation() {
    let peak = measure(BOUND_MIB);
    assert!(
        peak > BOUND_MIB,
        "{BOUND_MIB} MiB of ballast went unseen: peak RSS {peak} MiB"
    );
}
