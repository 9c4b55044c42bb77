//! The C ABI of SBT 2.0 (`skgfqsbt.h`, oracle-facts §1.3-1.8) on LP64: exported `sbtinit`,
//! the function table it returns, and the 1.1 entry points.
//!
//! RMAN allocates a context of [`CTX_SIZE`] bytes per channel and passes it to every call. The
//! context holds a magic word and a pointer to this channel's [`Channel`] (allocated by
//! `sbtinit2`, freed by `sbtend`); nothing else is kept between calls, so channels may be
//! threads of one process. Strings and lists handed back to RMAN live in the `Channel` until
//! the next call, as the API requires. Every entry point catches panics: none crosses into C.

// C ABI boundary: every unsafe block below carries its SAFETY justification.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_ulong, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::ptr;

use crate::session::{ObjectInfo, SBT_FILE_MAX, SbtFailure, Session, mms_version_text};
use crate::trace::Trace;

/// Whether the library may limit glibc's malloc to one arena: only in a channel that is a
/// process of its own (one thread, RMAN's, before the library starts any) and whose
/// environment does not set the limit already (`MALLOC_ARENA_MAX`, or `glibc.malloc.arena_max`
/// in `GLIBC_TUNABLES`).
fn may_limit_arenas(threads: usize, env_set: bool) -> bool {
    threads == 1 && !env_set
}

/// glibc gives each thread that allocates an arena of its own (up to eight per core), and
/// each keeps what was freed in it: a channel's nine threads held 10-11 MiB more at the peak
/// of a 1% change of two 4 GiB datafiles than with one arena (77-80 MiB against 65-67), at
/// the same CPU time. A channel is one process under Oracle on Unix, so the setting is the
/// channel's own; in a process that already runs other threads (Oracle's threaded execution,
/// a test) the library leaves malloc as it is. Called at every `sbtinit`; acts once.
fn one_malloc_arena() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let threads = std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
        let chosen = std::env::var_os("MALLOC_ARENA_MAX").is_some()
            || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.arena_max"));
        if may_limit_arenas(threads, chosen) {
            limit_arenas();
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_arenas() {
    // SAFETY: mallopt only sets a glibc parameter; M_ARENA_MAX bounds arenas created later.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_arenas() {}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Pair {
    pub tag: c_ulong,
    pub value: *mut c_void,
}

#[repr(C)]
pub struct Bserc {
    pub bsercoer: c_int,
    pub bsercerrno: c_int,
}

const SBTINIT_INEND: c_ulong = 1;
const SBTINIT_TRACE_NAME: c_ulong = 2;
const SBTINIT_OUTEND: c_ulong = 1;
const SBTINIT_MMS_APIVSN: c_ulong = 4;
const SBTINIT_MMS_DESC: c_ulong = 5;
const SBTINIT_MMS_FPTR: c_ulong = 6;
const SBTINIT_CTXSIZE: c_ulong = 7;
const SBTINIT_MMSVSN: c_ulong = 8;
const SBTINIT2_TRACE_LEVEL: c_ulong = 1;
const SBTINIT2_END: c_ulong = 9999;
const SBTOBJECT_DBNAME: c_ulong = 2;
const SBTOBJECT_DBID: c_ulong = 3;
const SBTOBJECT_FILETYPE: c_ulong = 5;
const SBTOBJECT_END: c_ulong = 32;
const SBTBFINFO_NAME: c_ulong = 1;
const SBTBFINFO_METHOD: c_ulong = 2;
const SBTBFINFO_CRETIME: c_ulong = 3;
const SBTBFINFO_LABEL: c_ulong = 5;
const SBTBFINFO_SHARE: c_ulong = 6;
const SBTBFINFO_ORDER: c_ulong = 7;
const SBTBFINFO_NOTFOUND: c_ulong = 8;
const SBTBFINFO_COMMENT: c_ulong = 9;
const SBTBFINFO_END: c_ulong = 9999;
const SBTCLOSE2_ABORT: c_ulong = 0x1;
/// `SBTINIT_ERROR_ARG` / `SBTOPEN_ERROR_SYS`-style bserc codes.
const SBTINIT_ERROR_ARG: c_int = 7110;
const SBT11_ERROR_SYS: c_int = 7011;
/// Longest list RMAN passes (names, object info); a longer one is treated as malformed.
const MAX_LIST: usize = 4096;

/// Context size announced to RMAN: a magic word and a pointer.
pub const CTX_SIZE: usize = 16;
const MAGIC: u64 = 0x4f52_4341_5342_5432; // "ORCASBT2"

/// Per-channel state reachable from RMAN's context.
struct Channel {
    session: Session,
    error: Option<(c_ulong, CString)>,
    info: InfoBuf,
    block_size: usize,
}

/// sbtinfo2's answer, kept alive until the next call.
#[derive(Default)]
struct InfoBuf {
    strings: Vec<CString>,
    numbers: Vec<c_ulong>,
    times: Vec<libc::time_t>,
    pairs: Vec<Pair>,
}

// SAFETY: the static lists below only hold pointers to other immutable statics; C reads them.
unsafe impl Sync for StaticPairs<6> {}
unsafe impl Sync for StaticPairs<1> {}
unsafe impl Sync for Fptr {}

#[repr(transparent)]
struct StaticPairs<const N: usize>([Pair; N]);

type F = *const c_void;

#[repr(C)]
struct Fptr([F; 21]);

static API_VERSION: c_ulong = 0x0200;
static CTX_SIZE_VALUE: c_ulong = CTX_SIZE as c_ulong;
static MMS_VERSION: c_ulong = ((crate::session::MMS_VERSION[0] as c_ulong) << 24)
    | ((crate::session::MMS_VERSION[1] as c_ulong) << 16)
    | ((crate::session::MMS_VERSION[2] as c_ulong) << 8)
    | (crate::session::MMS_VERSION[3] as c_ulong);
/// `SBTINIT_MMS_DESC`, shown by RMAN when the channel is allocated.
static DESC: &CStr = c"ORCA deduplicating media management";

/// `struct sbt_mms_fptr`, in the header's order; proxy copy is not offered (no SBTINIT_PROXY).
static FPTR: Fptr = Fptr([
    sbtbackup as F,
    sbtclose2 as F,
    sbtcommand as F,
    sbtend as F,
    sbterror as F,
    sbtinfo2 as F,
    sbtinit2 as F,
    sbtread2 as F,
    sbtremove2 as F,
    sbtrestore as F,
    sbtwrite2 as F,
    ptr::null(),
    ptr::null(),
    ptr::null(),
    ptr::null(),
    ptr::null(),
    ptr::null(),
    ptr::null(),
    ptr::null(),
    ptr::null(),
    ptr::null(),
]);

static INIT_OUT: StaticPairs<6> = StaticPairs([
    Pair {
        tag: SBTINIT_MMS_APIVSN,
        value: &API_VERSION as *const c_ulong as *mut c_void,
    },
    Pair {
        tag: SBTINIT_MMS_DESC,
        value: DESC.as_ptr() as *mut c_void,
    },
    Pair {
        tag: SBTINIT_MMS_FPTR,
        value: &FPTR as *const Fptr as *mut c_void,
    },
    Pair {
        tag: SBTINIT_CTXSIZE,
        value: &CTX_SIZE_VALUE as *const c_ulong as *mut c_void,
    },
    Pair {
        tag: SBTINIT_MMSVSN,
        value: &MMS_VERSION as *const c_ulong as *mut c_void,
    },
    Pair {
        tag: SBTINIT_OUTEND,
        value: ptr::null_mut(),
    },
]);

static INIT2_OUT: StaticPairs<1> = StaticPairs([Pair {
    tag: SBTINIT2_END,
    value: ptr::null_mut(),
}]);

thread_local! {
    /// SBTINIT_TRACE_NAME arrives in sbtinit, before any context exists; sbtinit2 runs next on
    /// the same channel thread and moves it into the channel's state.
    static TRACE_NAME: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// Runs `f`, turning a panic into the failure return.
fn guard(f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(-1)
}

/// Copies a NUL-terminated string of at most `max` bytes (NUL excluded).
///
/// # Safety
/// `p` is NULL or points to readable memory up to its NUL or `max` bytes, whichever is first.
unsafe fn c_string(p: *const c_char, max: usize) -> Result<String, String> {
    if p.is_null() {
        return Err("a NULL string was passed".into());
    }
    let mut len = 0;
    // SAFETY: reads stop at the first NUL or after `max` bytes, within the caller's promise.
    while unsafe { *p.add(len) } != 0 {
        len += 1;
        if len > max {
            return Err(format!("the name is longer than {max} bytes"));
        }
    }
    // SAFETY: `len` bytes before the NUL were just read.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Reads a NULL-terminated array of strings.
///
/// # Safety
/// `list` is NULL or a NULL-terminated array of NUL-terminated strings.
unsafe fn c_string_list(list: *mut *mut c_char) -> Result<Vec<String>, String> {
    if list.is_null() {
        return Err("a NULL name list was passed".into());
    }
    let mut out = Vec::new();
    for i in 0..MAX_LIST {
        // SAFETY: the list is NULL-terminated; we stop at the terminator.
        let p = unsafe { *list.add(i) };
        if p.is_null() {
            return Ok(out);
        }
        // SAFETY: each element is a NUL-terminated string.
        out.push(unsafe { c_string(p, SBT_FILE_MAX - 1) }?);
    }
    Err(format!(
        "the name list has no terminating NULL within {MAX_LIST} entries"
    ))
}

/// The channel state of `ctx`, if sbtinit2 set it up.
///
/// # Safety
/// `ctx` is NULL or RMAN's context of at least CTX_SIZE bytes.
unsafe fn channel<'a>(ctx: *mut c_void) -> Option<&'a mut Channel> {
    if ctx.is_null() {
        return None;
    }
    // SAFETY: the context has CTX_SIZE bytes; unaligned reads make no alignment assumption.
    let magic = unsafe { ptr::read_unaligned(ctx.cast::<u64>()) };
    // SAFETY: as above, second word.
    let p = unsafe { ptr::read_unaligned(ctx.cast::<*mut Channel>().add(1)) };
    if magic != MAGIC || p.is_null() {
        return None;
    }
    // SAFETY: `p` came from Box::into_raw in sbtinit2 and is freed only by sbtend, which
    // clears the magic first; RMAN never calls one context from two threads at once.
    Some(unsafe { &mut *p })
}

/// Runs a session operation: clears the pending error, records a failure for sbterror.
/// Called only from the exported functions, with the context RMAN passed them.
fn with_channel(ctx: *mut c_void, f: impl FnOnce(&mut Channel) -> Result<(), SbtFailure>) -> c_int {
    guard(|| {
        // SAFETY: `ctx` is the context RMAN passed to the exported function calling us.
        let Some(ch) = (unsafe { channel(ctx) }) else {
            return -1;
        };
        ch.error = None;
        match f(ch) {
            Ok(()) => 0,
            Err(e) => {
                ch.session
                    .trace
                    .line(0, &format!("error {}: {}", e.code, e.text));
                let text = CString::new(e.text.replace('\0', " ")).unwrap_or_default();
                ch.error = Some(e.code as c_ulong).map(|c| (c, text));
                -1
            }
        }
    })
}

/// # Safety
/// Called by RMAN with `brse` writable and `initout` writable; `initin` an INEND-terminated list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtinit(
    brse: *mut Bserc,
    initin: *mut Pair,
    initout: *mut *mut Pair,
) -> c_int {
    guard(|| {
        if initout.is_null() {
            if !brse.is_null() {
                // SAFETY: checked non-NULL; RMAN passes a writable bserc.
                unsafe { (*brse).bsercoer = SBTINIT_ERROR_ARG };
            }
            return -1;
        }
        let mut trace = None;
        if !initin.is_null() {
            for i in 0..MAX_LIST {
                // SAFETY: the input list is INEND-terminated; we stop there.
                let pair = unsafe { ptr::read_unaligned(initin.add(i)) };
                if pair.tag == SBTINIT_INEND {
                    break;
                }
                if pair.tag == SBTINIT_TRACE_NAME && !pair.value.is_null() {
                    // SAFETY: the value of SBTINIT_TRACE_NAME is a NUL-terminated path.
                    trace = unsafe { c_string(pair.value as *const c_char, 4096) }
                        .ok()
                        .map(PathBuf::from);
                }
            }
        }
        TRACE_NAME.with(|t| *t.borrow_mut() = trace);
        one_malloc_arena();
        // SAFETY: checked non-NULL above; the list is a static that outlives every call.
        unsafe { *initout = INIT_OUT.0.as_ptr() as *mut Pair };
        0
    })
}

/// # Safety
/// `ctx` is RMAN's context of CTX_SIZE bytes; `initin` a SBTINIT2_END-terminated list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtinit2(
    ctx: *mut c_void,
    _flags: c_ulong,
    initin: *mut Pair,
    initout: *mut *mut Pair,
) -> c_int {
    guard(|| {
        if ctx.is_null() {
            return -1;
        }
        let mut level = 0;
        if !initin.is_null() {
            for i in 0..MAX_LIST {
                // SAFETY: the input list is SBTINIT2_END-terminated; we stop there.
                let pair = unsafe { ptr::read_unaligned(initin.add(i)) };
                if pair.tag == SBTINIT2_END {
                    break;
                }
                if pair.tag == SBTINIT2_TRACE_LEVEL && !pair.value.is_null() {
                    // SAFETY: the value is a pointer to an unsigned long.
                    level = unsafe { ptr::read_unaligned(pair.value.cast::<c_ulong>()) } as u64;
                }
            }
        }
        if !initout.is_null() {
            // SAFETY: writable out-pointer; the list is static.
            unsafe { *initout = INIT2_OUT.0.as_ptr() as *mut Pair };
        }
        // SAFETY: `ctx` has CTX_SIZE bytes.
        if unsafe { channel(ctx) }.is_none() {
            let path = TRACE_NAME
                .with(|t| t.borrow().clone())
                .unwrap_or_else(|| std::env::temp_dir().join("sbtio.log"));
            let ch = Box::new(Channel {
                session: Session::new(Trace::new(path)),
                error: None,
                info: InfoBuf::default(),
                block_size: 0,
            });
            // SAFETY: the context has room for the magic and the pointer; unaligned writes.
            unsafe {
                ptr::write_unaligned(ctx.cast::<u64>(), MAGIC);
                ptr::write_unaligned(ctx.cast::<*mut Channel>().add(1), Box::into_raw(ch));
            }
        }
        with_channel(ctx, |ch| {
            ch.session.trace.level = level;
            ch.session.trace.line(1, "sbtinit2");
            ch.session.init()
        })
    })
}

/// # Safety
/// RMAN's context; `name` NUL-terminated; `file_info` an SBTOBJECT_END-terminated list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtbackup(
    ctx: *mut c_void,
    _flags: c_ulong,
    name: *mut c_char,
    file_info: *mut Pair,
    block_size: usize,
    _max_size: usize,
    _copy_number: c_uint,
    _media_pool: c_uint,
) -> c_int {
    {
        with_channel(ctx, |ch| {
            // SAFETY: `name` is NULL or NUL-terminated.
            let name = unsafe { c_string(name, SBT_FILE_MAX - 1) }
                .map_err(|e| SbtFailure::mm(format!("sbtbackup: {e}")))?;
            // SAFETY: `file_info` is NULL or an END-terminated sbtobject list.
            let object = unsafe { object_info(file_info) };
            ch.session.backup(&name, object, block_size)?;
            ch.block_size = block_size;
            Ok(())
        })
    }
}

/// # Safety
/// `list` is NULL or an SBTOBJECT_END-terminated list with values as skgfqsbt.h defines.
unsafe fn object_info(list: *mut Pair) -> ObjectInfo {
    let mut o = ObjectInfo::default();
    if list.is_null() {
        return o;
    }
    for i in 0..64 {
        // SAFETY: END-terminated; bounded.
        let pair = unsafe { ptr::read_unaligned(list.add(i)) };
        if pair.tag == SBTOBJECT_END || pair.value.is_null() && pair.tag == 0 {
            break;
        }
        if pair.value.is_null() {
            continue;
        }
        match pair.tag {
            // SAFETY: DBNAME is a NUL-terminated string.
            SBTOBJECT_DBNAME => {
                o.db_name = unsafe { c_string(pair.value as *const c_char, 64) }.ok()
            }
            // SAFETY: DBID and FILETYPE point to unsigned longs.
            SBTOBJECT_DBID => {
                o.dbid = Some(unsafe { ptr::read_unaligned(pair.value.cast::<c_ulong>()) } as u64)
            }
            // SAFETY: as above.
            SBTOBJECT_FILETYPE => {
                o.file_type =
                    Some(unsafe { ptr::read_unaligned(pair.value.cast::<c_ulong>()) } as u64)
            }
            _ => {}
        }
    }
    o
}

/// # Safety
/// RMAN's context; `buf` holds the block size given to sbtbackup.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtwrite2(ctx: *mut c_void, _flags: c_ulong, buf: *mut c_void) -> c_int {
    {
        with_channel(ctx, |ch| {
            if buf.is_null() {
                return Err(SbtFailure::mm("sbtwrite2: NULL buffer"));
            }
            if ch.block_size == 0 {
                return Err(SbtFailure::mm(
                    "sbtwrite2 without an open backup file (call sbtbackup first)",
                ));
            }
            // SAFETY: RMAN's buffer holds exactly the block size it announced.
            let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), ch.block_size) };
            ch.session.write(data).inspect_err(|_| ch.block_size = 0)
        })
    }
}

/// # Safety
/// RMAN's context; `buf` has room for the block size given to sbtrestore.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtread2(ctx: *mut c_void, _flags: c_ulong, buf: *mut c_void) -> c_int {
    {
        with_channel(ctx, |ch| {
            if buf.is_null() {
                return Err(SbtFailure::mm("sbtread2: NULL buffer"));
            }
            if ch.block_size == 0 {
                return Err(SbtFailure::mm(
                    "sbtread2 without an open backup file (call sbtrestore first)",
                ));
            }
            // SAFETY: RMAN's buffer has room for the block size it announced.
            let data = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), ch.block_size) };
            ch.session.read(data)
        })
    }
}

/// # Safety
/// RMAN's context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtclose2(ctx: *mut c_void, flags: c_ulong) -> c_int {
    {
        with_channel(ctx, |ch| {
            ch.block_size = 0;
            ch.session.close(flags & SBTCLOSE2_ABORT != 0)
        })
    }
}

/// # Safety
/// RMAN's context; `name` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtrestore(
    ctx: *mut c_void,
    _flags: c_ulong,
    name: *mut c_char,
    block_size: usize,
) -> c_int {
    {
        with_channel(ctx, |ch| {
            // SAFETY: `name` is NULL or NUL-terminated.
            let name = unsafe { c_string(name, SBT_FILE_MAX - 1) }
                .map_err(|e| SbtFailure::mm(format!("sbtrestore: {e}")))?;
            ch.session.restore(&name, block_size)?;
            ch.block_size = block_size;
            Ok(())
        })
    }
}

/// # Safety
/// RMAN's context; `names` a NULL-terminated list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtremove2(
    ctx: *mut c_void,
    _flags: c_ulong,
    names: *mut *mut c_char,
) -> c_int {
    {
        with_channel(ctx, |ch| {
            // SAFETY: NULL-terminated list of strings.
            let names = unsafe { c_string_list(names) }
                .map_err(|e| SbtFailure::mm(format!("sbtremove2: {e}")))?;
            ch.session.remove(&names)
        })
    }
}

/// # Safety
/// RMAN's context; `names` a NULL-terminated list; `info` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtinfo2(
    ctx: *mut c_void,
    _flags: c_ulong,
    names: *mut *mut c_char,
    info: *mut *mut Pair,
) -> c_int {
    {
        with_channel(ctx, |ch| {
            if info.is_null() {
                return Err(SbtFailure::mm("sbtinfo2: NULL output pointer"));
            }
            // SAFETY: NULL-terminated list of strings.
            let names = unsafe { c_string_list(names) }
                .map_err(|e| SbtFailure::mm(format!("sbtinfo2: {e}")))?;
            let found = ch.session.info(&names)?;
            ch.info = build_info(&names, &found);
            // SAFETY: writable out-pointer; the list lives in the channel until the next call.
            unsafe { *info = ch.info.pairs.as_mut_ptr() };
            Ok(())
        })
    }
}

/// The sbtbfinfo groups for `names`; every pointer targets storage inside the returned value
/// whose vectors are sized up front and never grow afterwards.
fn build_info(names: &[String], found: &[Option<i64>]) -> InfoBuf {
    let mut b = InfoBuf {
        strings: Vec::with_capacity(names.len() * 3),
        numbers: Vec::with_capacity(names.len() * 3),
        times: Vec::with_capacity(names.len()),
        pairs: Vec::with_capacity(names.len() * 7 + 1),
    };
    let comment = format!("API Version 2.0,MMS Version {}", mms_version_text());
    for (name, created) in names.iter().zip(found) {
        b.strings
            .push(CString::new(name.as_str()).unwrap_or_default());
        let name_ptr = b.strings.last().expect("pushed").as_ptr() as *mut c_void;
        b.pairs.push(Pair {
            tag: SBTBFINFO_NAME,
            value: name_ptr,
        });
        let Some(created) = created else {
            b.pairs.push(Pair {
                tag: SBTBFINFO_NOTFOUND,
                value: ptr::null_mut(),
            });
            continue;
        };
        for (tag, v) in [
            (SBTBFINFO_METHOD, 1),
            (SBTBFINFO_SHARE, 1),
            (SBTBFINFO_ORDER, 1),
        ] {
            b.numbers.push(v);
            let p = b.numbers.last().expect("pushed") as *const c_ulong as *mut c_void;
            b.pairs.push(Pair { tag, value: p });
        }
        b.times.push(*created as libc::time_t);
        let p = b.times.last().expect("pushed") as *const libc::time_t as *mut c_void;
        b.pairs.push(Pair {
            tag: SBTBFINFO_CRETIME,
            value: p,
        });
        for (tag, text) in [
            (SBTBFINFO_LABEL, "ORCA"),
            (SBTBFINFO_COMMENT, comment.as_str()),
        ] {
            b.strings.push(CString::new(text).unwrap_or_default());
            let p = b.strings.last().expect("pushed").as_ptr() as *mut c_void;
            b.pairs.push(Pair { tag, value: p });
        }
    }
    b.pairs.push(Pair {
        tag: SBTBFINFO_END,
        value: ptr::null_mut(),
    });
    b
}

/// # Safety
/// RMAN's context; `command` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtcommand(
    ctx: *mut c_void,
    _flags: c_ulong,
    command: *mut c_char,
) -> c_int {
    {
        with_channel(ctx, |ch| {
            // SAFETY: `command` is NULL or NUL-terminated (SBT_COMMAND_MAX).
            let text = unsafe { c_string(command, 1023) }
                .map_err(|e| SbtFailure::mm(format!("sbtcommand: {e}")))?;
            ch.session.command(&text)
        })
    }
}

/// # Safety
/// RMAN's context; out-pointers writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbterror(
    ctx: *mut c_void,
    _flags: c_ulong,
    code: *mut c_ulong,
    native: *mut *mut c_char,
    utf8: *mut *mut c_char,
) -> c_int {
    guard(|| {
        // SAFETY: RMAN's context.
        let Some(ch) = (unsafe { channel(ctx) }) else {
            return -1;
        };
        let Some((c, text)) = &ch.error else {
            return -1;
        };
        // SAFETY: each out-pointer is checked; the text lives in the channel until the next call.
        unsafe {
            if !code.is_null() {
                *code = *c;
            }
            if !native.is_null() {
                *native = text.as_ptr() as *mut c_char;
            }
            if !utf8.is_null() {
                *utf8 = text.as_ptr() as *mut c_char;
            }
        }
        0
    })
}

/// # Safety
/// RMAN's context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtend(ctx: *mut c_void, _flags: c_ulong) -> c_int {
    guard(|| {
        if ctx.is_null() {
            return -1;
        }
        // SAFETY: RMAN's context of CTX_SIZE bytes.
        let magic = unsafe { ptr::read_unaligned(ctx.cast::<u64>()) };
        if magic != MAGIC {
            // Never initialised here (or SBTEND_ABEND from another process): nothing to free.
            return 0;
        }
        // SAFETY: magic set by sbtinit2 together with the pointer; cleared before freeing so a
        // second sbtend is harmless.
        let p = unsafe { ptr::read_unaligned(ctx.cast::<*mut Channel>().add(1)) };
        // SAFETY: as above.
        unsafe {
            ptr::write_unaligned(ctx.cast::<u64>(), 0);
            ptr::write_unaligned(ctx.cast::<*mut Channel>().add(1), ptr::null_mut());
        }
        if !p.is_null() {
            // SAFETY: from Box::into_raw in sbtinit2, freed exactly once here.
            let mut ch = unsafe { Box::from_raw(p) };
            ch.session.trace.line(1, "sbtend");
            ch.session.end();
        }
        0
    })
}

/// SBT 1.1 entry points. This library announces API 2.0, so RMAN uses the 2.0 table; a 1.1
/// caller gets a clear failure code instead of undefined behaviour.
fn v11_unsupported(brse: *mut Bserc) -> c_int {
    if !brse.is_null() {
        // SAFETY: checked non-NULL; a 1.1 caller passes a writable bserc.
        unsafe { (*brse).bsercoer = SBT11_ERROR_SYS };
    }
    -1
}

/// # Safety
/// `brse` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtopen(
    brse: *mut Bserc,
    _name: *mut c_char,
    _mode: c_ulong,
    _bs: usize,
    _info: *mut Pair,
) -> c_int {
    guard(|| v11_unsupported(brse))
}

/// # Safety
/// `brse` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtread(brse: *mut Bserc, _th: c_int, _buf: *mut c_char) -> c_int {
    guard(|| v11_unsupported(brse))
}

/// # Safety
/// `brse` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtwrite(brse: *mut Bserc, _th: c_int, _buf: *mut c_char) -> c_int {
    guard(|| v11_unsupported(brse))
}

/// # Safety
/// `brse` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtclose(brse: *mut Bserc, _th: c_int, _flags: c_ulong) -> c_int {
    guard(|| v11_unsupported(brse))
}

/// # Safety
/// `brse` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtremove(
    brse: *mut Bserc,
    _name: *mut c_char,
    _info: *mut Pair,
) -> c_int {
    guard(|| v11_unsupported(brse))
}

/// # Safety
/// `brse` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sbtinfo(
    brse: *mut Bserc,
    _name: *mut c_char,
    _info: *mut Pair,
) -> *mut *mut c_char {
    let _ = guard(|| v11_unsupported(brse));
    ptr::null_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malloc_is_limited_only_in_a_channel_process_that_did_not_choose_otherwise() {
        assert!(may_limit_arenas(1, false));
        assert!(
            !may_limit_arenas(1, true),
            "a limit set in the environment wins"
        );
        assert!(
            !may_limit_arenas(2, false),
            "a threaded process keeps its arenas"
        );
        assert!(
            !may_limit_arenas(0, false),
            "/proc unreadable: leave malloc alone"
        );
    }

    #[test]
    fn layouts_match_lp64_c() {
        assert_eq!(std::mem::size_of::<Pair>(), 16);
        assert_eq!(std::mem::size_of::<Fptr>(), 21 * 8);
        assert!(DESC.to_bytes().len() < 64);
    }
}
