//! Loading an SBT library with `dlopen` and calling its entry points as RMAN does.
//!
//! This is the only place where the simulator crosses the C ABI. Everything handed to the
//! library (names, object lists, buffers) lives until the call returns; everything the library
//! hands back (texts, info lists) is copied before the next call, because the API only promises
//! it stays valid until then.

// C ABI boundary: every unsafe block below carries its SAFETY justification.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_ulong, c_void};
use std::path::{Path, PathBuf};
use std::ptr;

use super::error::{SbtCall, SbtError};
use super::ffi::*;

/// How many `(tag, value)` pairs a well-formed list may hold before the simulator gives up on
/// finding its END tag (protects against a library that forgets the terminator).
const MAX_LIST_PAIRS: usize = 4096;

/// What `sbtinit` told us about the media manager.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InitInfo {
    /// `SBTINIT_MMS_APIVSN` (0x0200 for SBT 2.0).
    pub api_version: u64,
    /// `SBTINIT_MMS_DESC`: shown in `channel c1: <desc> VER=<a.b.c.d>`.
    pub mms_desc: String,
    /// `SBTINIT_MMSVSN`, four bytes a.b.c.d.
    pub mms_version: u64,
    /// `SBTINIT_CTXSIZE`: bytes of context the caller allocates.
    pub ctx_size: usize,
    /// `SBTINIT_MAXSIZE`: largest backup file the media manager accepts.
    pub max_size: Option<u64>,
    /// `SBTINIT_PROXY` present.
    pub proxy: bool,
}

impl InitInfo {
    /// `a.b.c.d` as RMAN prints it after `VER=`.
    pub fn mms_version_text(&self) -> String {
        mms_version_text(self.mms_version)
    }

    /// The COMMENT RMAN builds from the versions (`API Version 2.0,MMS Version a.b.c.d`).
    pub fn comment(&self) -> String {
        format!(
            "API Version {}.{},MMS Version {}",
            (self.api_version >> 8) & 0xff,
            self.api_version & 0xff,
            self.mms_version_text()
        )
    }
}

/// `SBT_MMSVSN_SET(a,b,c,d)` printed back as `a.b.c.d`.
pub fn mms_version_text(v: u64) -> String {
    format!(
        "{}.{}.{}.{}",
        (v >> 24) & 0xff,
        (v >> 16) & 0xff,
        (v >> 8) & 0xff,
        v & 0xff
    )
}

/// One group of the sbtinfo2 answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileInfo {
    pub name: String,
    pub not_found: bool,
    pub method: Option<u64>,
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub label: Option<String>,
    pub share: Option<u64>,
    pub order: Option<u64>,
    pub comment: Option<String>,
}

/// Identity of the file sbtbackup creates (the `sbtobject` list).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectInfo {
    pub db_name: String,
    pub dbid: u64,
    /// `SBTOBJECT_DATAFILE` (1), `SBTOBJECT_ARCHLOG` (2) or `SBTOBJECT_OTHER` (3).
    pub file_type: u64,
}

/// A loaded SBT library after a successful `sbtinit`.
pub struct SbtLibrary {
    path: PathBuf,
    fptr: MmsFptr,
    info: InitInfo,
    // Declared last so the function pointers above are never used after dlclose.
    _lib: libloading::Library,
}

impl std::fmt::Debug for SbtLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SbtLibrary")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish()
    }
}

fn c_string(call: SbtCall, s: &str) -> Result<CString, SbtError> {
    CString::new(s).map_err(|_| SbtError::Argument {
        call,
        reason: format!("{s:?} contains a NUL byte"),
    })
}

/// Copies a C string the library owns; NULL becomes `None`.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string valid for the duration of the call.
unsafe fn copy_c_str(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees `p` is a valid NUL-terminated string.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Reads a `c_ulong` the library points at; NULL becomes `None`.
///
/// # Safety
/// `p` must be NULL or point to a readable `c_ulong`.
unsafe fn read_ulong(p: *const c_void) -> Option<u64> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees `p` points to a c_ulong; read_unaligned tolerates any
    // alignment a sloppy library might hand back.
    Some(unsafe { ptr::read_unaligned(p.cast::<c_ulong>()) } as u64)
}

/// Reads a `time_t` the library points at; NULL becomes `None`.
///
/// # Safety
/// `p` must be NULL or point to a readable `time_t`.
unsafe fn read_time(p: *const c_void) -> Option<i64> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees `p` points to a time_t.
    Some(unsafe { ptr::read_unaligned(p.cast::<libc::time_t>()) })
}

impl SbtLibrary {
    /// `dlopen` the library and run `sbtinit`, as RMAN does when it allocates an SBT channel.
    /// `trace_name` is passed as `SBTINIT_TRACE_NAME`.
    pub fn load(path: &Path, trace_name: Option<&str>) -> Result<Self, SbtError> {
        // SAFETY: loading a shared object runs its initialisers; the SBT library is named by the
        // DBA exactly as with Oracle, and the simulator exists to run such libraries.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| SbtError::Load {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        // SAFETY: `sbtinit` is declared by skgfqsbt.h with exactly the SbtInitFn signature.
        let sbtinit: SbtInitFn =
            *unsafe { lib.get::<SbtInitFn>(b"sbtinit\0") }.map_err(|e| SbtError::Load {
                path: path.display().to_string(),
                reason: format!("symbol sbtinit not found: {e}"),
            })?;

        let trace = trace_name.map(|t| c_string(SbtCall::Init, t)).transpose()?;
        let mut input = Vec::with_capacity(2);
        if let Some(t) = &trace {
            input.push(Pair {
                tag: SBTINIT_TRACE_NAME,
                value: t.as_ptr() as *mut c_void,
            });
        }
        input.push(Pair {
            tag: SBTINIT_INEND,
            value: ptr::null_mut(),
        });
        let mut bserc = Bserc::default();
        let mut out: *mut Pair = ptr::null_mut();
        // SAFETY: `input` is a valid END-terminated pair list that outlives the call, `bserc`
        // and `out` are valid out-pointers.
        let rc = unsafe { sbtinit(&mut bserc, input.as_mut_ptr(), &mut out) };
        if rc != 0 {
            return Err(SbtError::Init {
                code: bserc.bsercoer,
                errno: bserc.bsercerrno,
            });
        }
        if out.is_null() {
            return Err(SbtError::Protocol(
                "sbtinit succeeded but returned no output list".into(),
            ));
        }
        // SAFETY: sbtinit returned 0 and a non-NULL list, which skgfqsbt.h requires to be an
        // OUTEND-terminated array in storage that stays valid after the call.
        let (info, fptr) = unsafe { parse_init_output(out) }?;
        Ok(Self {
            path: path.to_path_buf(),
            fptr,
            info,
            _lib: lib,
        })
    }

    /// What `sbtinit` reported.
    pub fn info(&self) -> &InitInfo {
        &self.info
    }

    /// The library path, as given to `load`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Decodes the sbtinit output list.
///
/// # Safety
/// `out` must point to an OUTEND-terminated array of pairs whose values follow skgfqsbt.h.
unsafe fn parse_init_output(out: *const Pair) -> Result<(InitInfo, MmsFptr), SbtError> {
    let mut api_version: Option<u64> = None;
    let mut mms_desc = String::new();
    let mut mms_version = 0;
    let mut ctx_size = 0usize;
    let mut max_size = None;
    let mut proxy = false;
    let mut fptr: Option<MmsFptr> = None;
    for i in 0..MAX_LIST_PAIRS {
        // SAFETY: the list is END-terminated and we stop at the terminator.
        let pair = unsafe { ptr::read_unaligned(out.add(i)) };
        match pair.tag {
            SBTINIT_OUTEND => {
                let api_version = api_version.ok_or_else(|| {
                    SbtError::Protocol("sbtinit output lacks SBTINIT_MMS_APIVSN".into())
                })?;
                if ((api_version >> 8) & 0xff) != 2 {
                    return Err(SbtError::Protocol(format!(
                        "SBT-00147: media manager declares SBT API version {}.{}; the simulator \
                         supports only 2.0 libraries",
                        (api_version >> 8) & 0xff,
                        api_version & 0xff
                    )));
                }
                let fptr = fptr.ok_or_else(|| {
                    SbtError::Protocol(
                        "SBT-00146: sbt layer supports SBT v2, but did not supply SBT v2 functions"
                            .into(),
                    )
                })?;
                check_fptr(&fptr)?;
                return Ok((
                    InitInfo {
                        api_version,
                        mms_desc,
                        mms_version,
                        ctx_size,
                        max_size,
                        proxy,
                    },
                    fptr,
                ));
            }
            SBTINIT_MMS_APIVSN => {
                // SAFETY: MMS_APIVSN points to an unsigned long (skgfqsbt.h).
                api_version = unsafe { read_ulong(pair.value) }
            }
            SBTINIT_MMS_DESC => {
                // SAFETY: MMS_DESC carries a NUL-terminated char* in static storage.
                mms_desc = unsafe { copy_c_str(pair.value as *const c_char) }.unwrap_or_default()
            }
            SBTINIT_MMSVSN => {
                // SAFETY: MMSVSN points to an unsigned long.
                mms_version = unsafe { read_ulong(pair.value) }.unwrap_or(0)
            }
            SBTINIT_CTXSIZE => {
                // SAFETY: CTXSIZE points to an unsigned long.
                let size = unsafe { read_ulong(pair.value) }.unwrap_or(0);
                if size as usize > SBT_CONTEXT_MAX {
                    return Err(SbtError::Protocol(format!(
                        "media manager asks for a {size}-byte context, more than SBT_CONTEXT_MAX \
                         ({SBT_CONTEXT_MAX})"
                    )));
                }
                ctx_size = size as usize;
            }
            SBTINIT_MAXSIZE => {
                // SAFETY: MAXSIZE points to an unsigned long.
                max_size = unsafe { read_ulong(pair.value) }
            }
            SBTINIT_PROXY => proxy = true,
            SBTINIT_MMS_FPTR => {
                if pair.value.is_null() {
                    return Err(SbtError::Protocol("SBTINIT_MMS_FPTR points to NULL".into()));
                }
                // SAFETY: MMS_FPTR points to a struct sbt_mms_fptr (21 pointers, §1.4 order).
                fptr = Some(unsafe { ptr::read_unaligned(pair.value.cast::<MmsFptr>()) });
            }
            // SIGNAL, PROXY_MAXFILES and tags of newer releases carry nothing the simulator uses.
            _ => {}
        }
    }
    Err(SbtError::Protocol(format!(
        "sbtinit output list has no SBTINIT_OUTEND within {MAX_LIST_PAIRS} entries"
    )))
}

fn check_fptr(f: &MmsFptr) -> Result<(), SbtError> {
    let missing: Vec<&str> = [
        ("sbtbackup", f.sbtbackup.is_none()),
        ("sbtclose2", f.sbtclose2.is_none()),
        ("sbtcommand", f.sbtcommand.is_none()),
        ("sbtend", f.sbtend.is_none()),
        ("sbterror", f.sbterror.is_none()),
        ("sbtinfo2", f.sbtinfo2.is_none()),
        ("sbtinit2", f.sbtinit2.is_none()),
        ("sbtread2", f.sbtread2.is_none()),
        ("sbtremove2", f.sbtremove2.is_none()),
        ("sbtrestore", f.sbtrestore.is_none()),
        ("sbtwrite2", f.sbtwrite2.is_none()),
    ]
    .into_iter()
    .filter_map(|(n, m)| m.then_some(n))
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SbtError::Protocol(format!(
            "SBT-00146: function table lacks {}",
            missing.join(", ")
        )))
    }
}

/// Outcome of one sbtread2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The buffer was filled.
    Data,
    /// sbtread2 returned -1 with SBT_ERROR_EOF.
    Eof,
}

/// One SBT session: a context of CTXSIZE bytes and the calls made with it.
/// Dropping an open session calls `sbtend(SBTEND_ABEND)`, as Oracle does when a channel dies.
pub struct SbtSession {
    lib: SbtLibrary,
    // u64 words so the context is 8-byte aligned, zero-filled as Oracle's allocator leaves it.
    ctx: Box<[u64]>,
    block_size: usize,
    ended: bool,
}

impl std::fmt::Debug for SbtSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SbtSession")
            .field("lib", &self.lib)
            .field("ctx_size", &self.lib.info.ctx_size)
            .finish()
    }
}

impl SbtSession {
    /// Allocate the zeroed context and call `sbtinit2` with the trace level and client version.
    pub fn start(lib: SbtLibrary, trace_level: u64) -> Result<Self, SbtError> {
        let words = lib.info.ctx_size.div_ceil(8).max(1);
        let mut session = Self {
            lib,
            ctx: vec![0u64; words].into_boxed_slice(),
            block_size: 0,
            ended: false,
        };
        let mut level: c_ulong = trace_level as c_ulong;
        let mut client: c_ulong = SBT_API_VERSION_2_0;
        let mut input = [
            Pair {
                tag: SBTINIT2_TRACE_LEVEL,
                value: (&mut level as *mut c_ulong).cast(),
            },
            Pair {
                tag: SBTINIT2_CLIENT_APIVSN,
                value: (&mut client as *mut c_ulong).cast(),
            },
            Pair {
                tag: SBTINIT2_END,
                value: ptr::null_mut(),
            },
        ];
        let mut out: *mut Pair = ptr::null_mut();
        let f = session.fptr().sbtinit2;
        let ctx = session.ctx_ptr();
        // SAFETY: f was checked non-NULL at load; ctx is CTXSIZE zeroed bytes; the input list is
        // END-terminated and outlives the call; out is a valid out-pointer (output ignored).
        let rc = unsafe { f.expect("checked at load")(ctx, 0, input.as_mut_ptr(), &mut out) };
        session.check(SbtCall::Init2, rc)?;
        Ok(session)
    }

    /// The library this session runs on.
    pub fn library(&self) -> &SbtLibrary {
        &self.lib
    }

    fn fptr(&self) -> MmsFptr {
        self.lib.fptr
    }

    fn ctx_ptr(&mut self) -> *mut c_void {
        self.ctx.as_mut_ptr().cast()
    }

    /// Turns a return code into a result, fetching the library's error with `sbterror`.
    fn check(&mut self, call: SbtCall, rc: c_int) -> Result<(), SbtError> {
        if rc == 0 {
            return Ok(());
        }
        let (code, text) = self.last_error();
        Err(SbtError::Call { call, code, text })
    }

    /// `sbterror`: the pending error of this context (code 0 and a note when there is none).
    pub fn last_error(&mut self) -> (u64, String) {
        let f = self.fptr().sbterror.expect("checked at load");
        let ctx = self.ctx_ptr();
        let mut code: c_ulong = 0;
        let mut native: *mut c_char = ptr::null_mut();
        let mut utf8: *mut c_char = ptr::null_mut();
        // SAFETY: all out-pointers are valid; ctx is this session's context.
        let rc = unsafe { f(ctx, 0, &mut code, &mut native, &mut utf8) };
        if rc != 0 {
            return (0, "sbterror returned no error information".into());
        }
        // SAFETY: sbterror returned 0, so the texts are NULL or valid until the next SBT call;
        // they are copied right away.
        let text = unsafe { copy_c_str(native) }
            .or_else(|| unsafe { copy_c_str(utf8) })
            .unwrap_or_default();
        (code as u64, text)
    }

    /// `sbtbackup`: create the backup file `name`; every write then carries `block_size` bytes.
    pub fn backup(
        &mut self,
        name: &str,
        object: &ObjectInfo,
        block_size: usize,
        max_size: usize,
        copy_number: u32,
        media_pool: u32,
    ) -> Result<(), SbtError> {
        check_name(SbtCall::Backup, name)?;
        let cname = c_string(SbtCall::Backup, name)?;
        let dbname = c_string(SbtCall::Backup, &object.db_name)?;
        let mut dbid: c_ulong = object.dbid as c_ulong;
        let mut file_type: c_ulong = object.file_type as c_ulong;
        let mut objects = [
            Pair {
                tag: SBTOBJECT_DBNAME,
                value: dbname.as_ptr() as *mut c_void,
            },
            Pair {
                tag: SBTOBJECT_DBID,
                value: (&mut dbid as *mut c_ulong).cast(),
            },
            Pair {
                tag: SBTOBJECT_FILETYPE,
                value: (&mut file_type as *mut c_ulong).cast(),
            },
            Pair {
                tag: SBTOBJECT_END,
                value: ptr::null_mut(),
            },
        ];
        let f = self.fptr().sbtbackup.expect("checked at load");
        let ctx = self.ctx_ptr();
        // SAFETY: name and the object list (with the strings and integers it points to) outlive
        // the call; the list is END-terminated.
        let rc = unsafe {
            f(
                ctx,
                0,
                cname.as_ptr() as *mut c_char,
                objects.as_mut_ptr(),
                block_size,
                max_size,
                copy_number,
                media_pool,
            )
        };
        self.check(SbtCall::Backup, rc)?;
        self.block_size = block_size;
        Ok(())
    }

    fn check_buffer(&self, call: SbtCall, len: usize) -> Result<(), SbtError> {
        if self.block_size == 0 || len != self.block_size {
            return Err(SbtError::Argument {
                call,
                reason: format!(
                    "buffer of {len} bytes, but the open file's block size is {}",
                    self.block_size
                ),
            });
        }
        Ok(())
    }

    /// `sbtwrite2`: one buffer of exactly the block size given to sbtbackup.
    pub fn write(&mut self, buf: &[u8]) -> Result<(), SbtError> {
        self.check_buffer(SbtCall::Write2, buf.len())?;
        let f = self.fptr().sbtwrite2.expect("checked at load");
        let ctx = self.ctx_ptr();
        // SAFETY: buf holds exactly block_size bytes, which is all sbtwrite2 reads. The API
        // declares the pointer mutable but never writes through it.
        let rc = unsafe { f(ctx, 0, buf.as_ptr() as *mut c_void) };
        self.check(SbtCall::Write2, rc)
    }

    /// `sbtclose2`, with SBTCLOSE2_ABORT when the file must be discarded.
    pub fn close(&mut self, abort: bool) -> Result<(), SbtError> {
        let f = self.fptr().sbtclose2.expect("checked at load");
        let ctx = self.ctx_ptr();
        let flags = if abort { SBTCLOSE2_ABORT } else { 0 };
        // SAFETY: plain call on this session's context.
        let rc = unsafe { f(ctx, flags) };
        self.block_size = 0;
        self.check(SbtCall::Close2, rc)
    }

    /// `sbtinfo2` for a list of names.
    pub fn info(&mut self, names: &[String]) -> Result<Vec<FileInfo>, SbtError> {
        let cnames = names
            .iter()
            .map(|n| check_name(SbtCall::Info2, n).and_then(|_| c_string(SbtCall::Info2, n)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut list: Vec<*mut c_char> = cnames
            .iter()
            .map(|c| c.as_ptr() as *mut c_char)
            .chain(std::iter::once(ptr::null_mut()))
            .collect();
        let mut out: *mut Pair = ptr::null_mut();
        let f = self.fptr().sbtinfo2.expect("checked at load");
        let ctx = self.ctx_ptr();
        // SAFETY: list is NULL-terminated and its strings outlive the call; out is valid.
        let rc = unsafe { f(ctx, 0, list.as_mut_ptr(), &mut out) };
        self.check(SbtCall::Info2, rc)?;
        if out.is_null() {
            return Err(SbtError::Protocol(
                "sbtinfo2 succeeded but returned no information list".into(),
            ));
        }
        // SAFETY: a successful sbtinfo2 returns an END-terminated sbtbfinfo array valid until
        // the next call; it is copied before returning.
        unsafe { parse_bfinfo(out) }
    }

    /// `sbtrestore`: open `name` for reading in `block_size` buffers.
    pub fn restore(&mut self, name: &str, block_size: usize) -> Result<(), SbtError> {
        check_name(SbtCall::Restore, name)?;
        let cname = c_string(SbtCall::Restore, name)?;
        let f = self.fptr().sbtrestore.expect("checked at load");
        let ctx = self.ctx_ptr();
        // SAFETY: the name outlives the call.
        let rc = unsafe { f(ctx, 0, cname.as_ptr() as *mut c_char, block_size) };
        self.check(SbtCall::Restore, rc)?;
        self.block_size = block_size;
        Ok(())
    }

    /// `sbtread2` into a buffer of exactly the restore block size.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<ReadOutcome, SbtError> {
        self.check_buffer(SbtCall::Read2, buf.len())?;
        let f = self.fptr().sbtread2.expect("checked at load");
        let ctx = self.ctx_ptr();
        // SAFETY: buf is writable for exactly block_size bytes, all sbtread2 may fill.
        let rc = unsafe { f(ctx, 0, buf.as_mut_ptr().cast()) };
        if rc == 0 {
            return Ok(ReadOutcome::Data);
        }
        let (code, text) = self.last_error();
        if code == SBT_ERROR_EOF {
            Ok(ReadOutcome::Eof)
        } else {
            Err(SbtError::Call {
                call: SbtCall::Read2,
                code,
                text,
            })
        }
    }

    /// `sbtremove2` for a list of names.
    pub fn remove(&mut self, names: &[String]) -> Result<(), SbtError> {
        let cnames = names
            .iter()
            .map(|n| check_name(SbtCall::Remove2, n).and_then(|_| c_string(SbtCall::Remove2, n)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut list: Vec<*mut c_char> = cnames
            .iter()
            .map(|c| c.as_ptr() as *mut c_char)
            .chain(std::iter::once(ptr::null_mut()))
            .collect();
        let f = self.fptr().sbtremove2.expect("checked at load");
        let ctx = self.ctx_ptr();
        // SAFETY: list is NULL-terminated and its strings outlive the call.
        let rc = unsafe { f(ctx, 0, list.as_mut_ptr()) };
        self.check(SbtCall::Remove2, rc)
    }

    /// `sbtcommand` with a SEND string, passed unaltered.
    pub fn command(&mut self, text: &str) -> Result<(), SbtError> {
        if text.len() >= SBT_COMMAND_MAX {
            return Err(SbtError::Argument {
                call: SbtCall::Command,
                reason: format!(
                    "SEND string of {} bytes exceeds SBT_COMMAND_MAX ({SBT_COMMAND_MAX} incl. NUL)",
                    text.len()
                ),
            });
        }
        let c = c_string(SbtCall::Command, text)?;
        let f = self.fptr().sbtcommand.expect("checked at load");
        let ctx = self.ctx_ptr();
        // SAFETY: the command string outlives the call.
        let rc = unsafe { f(ctx, 0, c.as_ptr() as *mut c_char) };
        self.check(SbtCall::Command, rc)
    }

    /// `sbtend`: end the session (SBTEND_ABEND when the channel ends abnormally).
    pub fn end(mut self, abend: bool) -> Result<(), SbtError> {
        self.end_inner(abend)
    }

    fn end_inner(&mut self, abend: bool) -> Result<(), SbtError> {
        self.ended = true;
        let f = self.fptr().sbtend.expect("checked at load");
        let ctx = self.ctx_ptr();
        let flags = if abend { SBTEND_ABEND } else { 0 };
        // SAFETY: plain call on this session's context.
        let rc = unsafe { f(ctx, flags) };
        self.check(SbtCall::End, rc)
    }
}

impl Drop for SbtSession {
    fn drop(&mut self) {
        if !self.ended {
            // Best effort: a failing sbtend on a dying channel has nobody left to report to.
            let _ = self.end_inner(true);
        }
    }
}

fn check_name(call: SbtCall, name: &str) -> Result<(), SbtError> {
    if name.is_empty() || name.len() >= SBT_FILE_MAX {
        return Err(SbtError::Argument {
            call,
            reason: format!(
                "backup file name of {} bytes; SBT names are 1..{} bytes",
                name.len(),
                SBT_FILE_MAX - 1
            ),
        });
    }
    Ok(())
}

/// Decodes an sbtinfo2 answer into groups.
///
/// # Safety
/// `out` must point to an SBTBFINFO_END-terminated array whose values follow skgfqsbt.h.
unsafe fn parse_bfinfo(out: *const Pair) -> Result<Vec<FileInfo>, SbtError> {
    let mut groups: Vec<FileInfo> = Vec::new();
    for i in 0..MAX_LIST_PAIRS {
        // SAFETY: the list is END-terminated and we stop at the terminator.
        let pair = unsafe { ptr::read_unaligned(out.add(i)) };
        if pair.tag == SBTBFINFO_END {
            return Ok(groups);
        }
        if pair.tag == SBTBFINFO_NAME {
            groups.push(FileInfo {
                // SAFETY: NAME carries a char*.
                name: unsafe { copy_c_str(pair.value as *const c_char) }.unwrap_or_default(),
                ..FileInfo::default()
            });
            continue;
        }
        let Some(g) = groups.last_mut() else {
            return Err(SbtError::Protocol(format!(
                "sbtinfo2 answer starts with tag {} instead of SBTBFINFO_NAME",
                pair.tag
            )));
        };
        let value = pair.value;
        match pair.tag {
            SBTBFINFO_NOTFOUND => g.not_found = true,
            // SAFETY: METHOD, SHARE and ORDER point to unsigned longs (skgfqsbt.h).
            SBTBFINFO_METHOD => g.method = unsafe { read_ulong(value) },
            // SAFETY: as above.
            SBTBFINFO_SHARE => g.share = unsafe { read_ulong(value) },
            // SAFETY: as above.
            SBTBFINFO_ORDER => g.order = unsafe { read_ulong(value) },
            // SAFETY: CRETIME and EXPTIME point to time_t values.
            SBTBFINFO_CRETIME => g.created = unsafe { read_time(value) },
            // SAFETY: as above.
            SBTBFINFO_EXPTIME => g.expires = unsafe { read_time(value) },
            // SAFETY: LABEL and COMMENT carry NUL-terminated char* strings.
            SBTBFINFO_LABEL => g.label = unsafe { copy_c_str(value as *const c_char) },
            // SAFETY: as above.
            SBTBFINFO_COMMENT => g.comment = unsafe { copy_c_str(value as *const c_char) },
            _ => {}
        }
    }
    Err(SbtError::Protocol(format!(
        "sbtinfo2 answer has no SBTBFINFO_END within {MAX_LIST_PAIRS} entries"
    )))
}
