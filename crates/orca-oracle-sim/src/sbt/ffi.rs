//! C types and constants of Oracle's SBT 2.0 API (`skgfqsbt.h`), laid out for LP64.
//!
//! Every list the API exchanges is an array of `(unsigned long tag, void *value)` pairs ended by
//! an END tag; on LP64 Linux each pair is 16 bytes. The tag is `c_ulong`, never `int`: an `int`
//! tag only works by accident on little-endian machines.

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void};

/// `SBT_APIVSN_SET(2, 0)`.
pub const SBT_API_VERSION_2_0: c_ulong = 0x0200;
/// Largest context a library may request (`SBT_CONTEXT_MAX`).
pub const SBT_CONTEXT_MAX: usize = 1_048_576;
/// Longest backup file name including the NUL (`SBT_FILE_MAX`).
pub const SBT_FILE_MAX: usize = 512;
/// Longest SEND string including the NUL (`SBT_COMMAND_MAX`).
pub const SBT_COMMAND_MAX: usize = 512;

/// `sbtobject` tags (sbtbackup input).
pub const SBTOBJECT_DBNAME: c_ulong = 2;
pub const SBTOBJECT_DBID: c_ulong = 3;
pub const SBTOBJECT_FILETYPE: c_ulong = 5;
pub const SBTOBJECT_END: c_ulong = 32;
/// `SBTOBJECT_FILETYPE` values.
pub const SBTOBJECT_DATAFILE: c_ulong = 1;
pub const SBTOBJECT_ARCHLOG: c_ulong = 2;
pub const SBTOBJECT_OTHER: c_ulong = 3;

/// `sbtinit_input` tags.
pub const SBTINIT_INEND: c_ulong = 1;
pub const SBTINIT_TRACE_NAME: c_ulong = 2;

/// `sbtinit_output` tags.
pub const SBTINIT_OUTEND: c_ulong = 1;
pub const SBTINIT_SIGNAL: c_ulong = 2;
pub const SBTINIT_MAXSIZE: c_ulong = 3;
pub const SBTINIT_MMS_APIVSN: c_ulong = 4;
pub const SBTINIT_MMS_DESC: c_ulong = 5;
pub const SBTINIT_MMS_FPTR: c_ulong = 6;
pub const SBTINIT_CTXSIZE: c_ulong = 7;
pub const SBTINIT_MMSVSN: c_ulong = 8;
pub const SBTINIT_PROXY: c_ulong = 9;
pub const SBTINIT_PROXY_MAXFILES: c_ulong = 10;

/// `sbtinit2_input` tags.
pub const SBTINIT2_TRACE_LEVEL: c_ulong = 1;
pub const SBTINIT2_CLIENT_APIVSN: c_ulong = 2;
pub const SBTINIT2_END: c_ulong = 9999;

/// `sbtbfinfo` tags (sbtinfo2 output).
pub const SBTBFINFO_NAME: c_ulong = 1;
pub const SBTBFINFO_METHOD: c_ulong = 2;
pub const SBTBFINFO_CRETIME: c_ulong = 3;
pub const SBTBFINFO_EXPTIME: c_ulong = 4;
pub const SBTBFINFO_LABEL: c_ulong = 5;
pub const SBTBFINFO_SHARE: c_ulong = 6;
pub const SBTBFINFO_ORDER: c_ulong = 7;
pub const SBTBFINFO_NOTFOUND: c_ulong = 8;
pub const SBTBFINFO_COMMENT: c_ulong = 9;
pub const SBTBFINFO_END: c_ulong = 9999;

/// Flags.
pub const SBTCLOSE2_ABORT: c_ulong = 0x1;
pub const SBTEND_ABEND: c_ulong = 0x1;

/// sbterror codes.
pub const SBT_ERROR_OPERATOR: c_ulong = 7500;
pub const SBT_ERROR_MM: c_ulong = 7501;
pub const SBT_ERROR_NOTFOUND: c_ulong = 7502;
pub const SBT_ERROR_EXISTS: c_ulong = 7503;
pub const SBT_ERROR_EOF: c_ulong = 7504;

/// Generic `(tag, value)` pair: sbtobject, sbtinit_input/output, sbtinit2_input/output, sbtbfinfo.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    pub tag: c_ulong,
    pub value: *mut c_void,
}

/// `bserc`: error record used only by sbtinit and the 1.1 functions.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Bserc {
    pub bsercoer: c_int,
    pub bsercerrno: c_int,
}

pub type SbtInitFn =
    unsafe extern "C" fn(brse: *mut Bserc, initin: *mut Pair, initout: *mut *mut Pair) -> c_int;

pub type SbtBackupFn = unsafe extern "C" fn(
    ctx: *mut c_void,
    flags: c_ulong,
    name: *mut c_char,
    file_info: *mut Pair,
    block_size: usize,
    max_size: usize,
    copy_number: c_uint,
    media_pool: c_uint,
) -> c_int;
pub type SbtFlagsFn = unsafe extern "C" fn(ctx: *mut c_void, flags: c_ulong) -> c_int;
pub type SbtCommandFn =
    unsafe extern "C" fn(ctx: *mut c_void, flags: c_ulong, command: *mut c_char) -> c_int;
pub type SbtErrorFn = unsafe extern "C" fn(
    ctx: *mut c_void,
    flags: c_ulong,
    code: *mut c_ulong,
    native: *mut *mut c_char,
    utf8: *mut *mut c_char,
) -> c_int;
pub type SbtInfo2Fn = unsafe extern "C" fn(
    ctx: *mut c_void,
    flags: c_ulong,
    names: *mut *mut c_char,
    info: *mut *mut Pair,
) -> c_int;
pub type SbtInit2Fn = unsafe extern "C" fn(
    ctx: *mut c_void,
    flags: c_ulong,
    initin: *mut Pair,
    initout: *mut *mut Pair,
) -> c_int;
pub type SbtBufFn =
    unsafe extern "C" fn(ctx: *mut c_void, flags: c_ulong, buf: *mut c_void) -> c_int;
pub type SbtRemove2Fn =
    unsafe extern "C" fn(ctx: *mut c_void, flags: c_ulong, names: *mut *mut c_char) -> c_int;
pub type SbtRestoreFn = unsafe extern "C" fn(
    ctx: *mut c_void,
    flags: c_ulong,
    name: *mut c_char,
    block_size: usize,
) -> c_int;

/// `struct sbt_mms_fptr`: 21 pointers in exactly this order. The proxy-copy entries are never
/// called by the simulator, so they are kept as untyped pointers.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MmsFptr {
    pub sbtbackup: Option<SbtBackupFn>,
    pub sbtclose2: Option<SbtFlagsFn>,
    pub sbtcommand: Option<SbtCommandFn>,
    pub sbtend: Option<SbtFlagsFn>,
    pub sbterror: Option<SbtErrorFn>,
    pub sbtinfo2: Option<SbtInfo2Fn>,
    pub sbtinit2: Option<SbtInit2Fn>,
    pub sbtread2: Option<SbtBufFn>,
    pub sbtremove2: Option<SbtRemove2Fn>,
    pub sbtrestore: Option<SbtRestoreFn>,
    pub sbtwrite2: Option<SbtBufFn>,
    pub proxy: [*const c_void; 10],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_lp64_c() {
        assert_eq!(std::mem::size_of::<Pair>(), 16);
        assert_eq!(std::mem::size_of::<Bserc>(), 8);
        assert_eq!(std::mem::size_of::<MmsFptr>(), 21 * 8);
    }
}
