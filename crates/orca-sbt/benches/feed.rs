//! Drives the library through its C ABI the way RMAN's channels do (one thread and one
//! context per channel, 256 KiB `sbtwrite2` buffers), feeding backup pieces held in memory, so
//! the figure is the library's own speed without the database side. Used by
//! `scripts/bench-sbt`:
//!   cargo bench -p orca-sbt --bench feed -- PIECE_DIR REPO KEY_FILE CACHE_DIR ROUNDS
//! Prints one JSON line per round: bytes, seconds, MB/s, and the CPU seconds the process
//! spent (user and system): on a shared machine the CPU a round costs varies less than its
//! wall time, so A/B comparisons read that.
#![allow(unsafe_code)]

use std::ffi::{CString, c_char, c_ulong, c_void};
use std::ptr;
use std::time::Instant;

use orca_sbt::ffi::{
    Bserc, CTX_SIZE, Pair, sbtbackup, sbtclose2, sbtend, sbterror, sbtinit, sbtinit2, sbtwrite2,
};

const BLK: usize = 256 << 10;

fn fail(ctx: *mut c_void, what: &str) -> ! {
    let mut code: c_ulong = 0;
    let mut native: *mut c_char = ptr::null_mut();
    let mut utf8: *mut c_char = ptr::null_mut();
    // SAFETY: valid context and out-pointers; the text is NUL-terminated when rc == 0.
    let text = unsafe {
        if sbterror(ctx, 0, &mut code, &mut native, &mut utf8) == 0 {
            std::ffi::CStr::from_ptr(native)
                .to_string_lossy()
                .into_owned()
        } else {
            String::new()
        }
    };
    panic!("{what} failed: {code} {text}");
}

/// One channel: backs up `pieces` under names with `suffix`.
fn channel(pieces: &mut [(String, Vec<u8>)], suffix: &str) {
    let mut ctx = vec![0u8; CTX_SIZE];
    let c = ctx.as_mut_ptr().cast::<c_void>();
    let end = [Pair {
        tag: 9999,
        value: ptr::null_mut(),
    }];
    let inend = [Pair {
        tag: 1,
        value: ptr::null_mut(),
    }];
    let mut b = Bserc {
        bsercoer: 0,
        bsercerrno: 0,
    };
    let mut out: *mut Pair = ptr::null_mut();
    let mut out2: *mut Pair = ptr::null_mut();
    // SAFETY: the calls follow the RMAN sequence with valid buffers of the announced sizes.
    unsafe {
        assert_eq!(sbtinit(&mut b, inend.as_ptr() as *mut Pair, &mut out), 0);
        if sbtinit2(c, 0, end.as_ptr() as *mut Pair, &mut out2) != 0 {
            fail(c, "sbtinit2");
        }
        for (name, bytes) in pieces.iter_mut() {
            let n = CString::new(format!("{name}{suffix}")).unwrap();
            if sbtbackup(
                c,
                0,
                n.as_ptr() as *mut c_char,
                ptr::null_mut(),
                BLK,
                0,
                1,
                0,
            ) != 0
            {
                fail(c, "sbtbackup");
            }
            // RMAN hands over the buffer it read the datafile into; so does this harness,
            // copying only a short last block, so the figure is the library's own work.
            let mut last = vec![0u8; BLK];
            for block in bytes.chunks_mut(BLK) {
                let buf = if block.len() == BLK {
                    block
                } else {
                    last[..block.len()].copy_from_slice(block);
                    &mut last[..]
                };
                if sbtwrite2(c, 0, buf.as_mut_ptr().cast()) != 0 {
                    fail(c, "sbtwrite2");
                }
            }
            if sbtclose2(c, 0) != 0 {
                fail(c, "sbtclose2");
            }
        }
        sbtend(c, 0);
    }
}

/// User and system CPU seconds of the whole process so far.
fn cpu_seconds() -> (f64, f64) {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF cannot fail.
    let u = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr());
        u.assume_init()
    };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (s(u.ru_utime), s(u.ru_stime))
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.len() < 5 {
        eprintln!("usage: feed PIECE_DIR REPO KEY_FILE CACHE_DIR ROUNDS");
        return;
    }
    let (dir, repo, key, cache) = (&args[0], &args[1], &args[2], &args[3]);
    let rounds: usize = args[4].parse().unwrap_or(2);
    // SAFETY: set before any thread starts; the library reads its configuration from the
    // environment exactly as an RMAN channel process does.
    unsafe {
        std::env::set_var("ORCA_REPO", repo);
        std::env::set_var("ORCA_KEY_FILE", key);
        std::env::set_var("ORCA_CACHE_DIR", cache);
    }
    let mut pieces: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    pieces.sort();
    let bytes: usize = pieces.iter().map(|p| p.1.len()).sum();
    let half = pieces.len().div_ceil(2);
    for round in 0..rounds {
        let suffix = format!(".{}.r{round}", std::process::id());
        let started = Instant::now();
        let cpu0 = cpu_seconds();
        let (first, second) = pieces.split_at_mut(half);
        std::thread::scope(|s| {
            s.spawn(|| channel(first, &suffix));
            s.spawn(|| channel(second, &suffix));
        });
        let secs = started.elapsed().as_secs_f64();
        let (user, sys) = cpu_seconds();
        println!(
            "{{\"round\": {round}, \"bytes\": {bytes}, \"seconds\": {secs:.3}, \"mb_per_s\": {:.0}, \"user_seconds\": {:.3}, \"system_seconds\": {:.3}}}",
            bytes as f64 / 1e6 / secs,
            user - cpu0.0,
            sys - cpu0.1,
        );
    }
}
