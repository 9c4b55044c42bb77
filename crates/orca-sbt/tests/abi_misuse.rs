//! Misuse through the C ABI, as Oracle's sbttest would try it: NULL pointers, calls out of
//! order, oversized names. Every case returns -1 (or a documented code), never crashes.
#![allow(unsafe_code)]

use std::ffi::{CString, c_char, c_ulong, c_void};
use std::ptr;

use orca_sbt::ffi::{
    Bserc, CTX_SIZE, Pair, sbtbackup, sbtclose2, sbtend, sbterror, sbtinfo2, sbtinit, sbtinit2,
    sbtread2, sbtremove2, sbtrestore, sbtwrite2,
};

fn error_of(ctx: *mut c_void) -> Option<(u64, String)> {
    let mut code: c_ulong = 0;
    let mut native: *mut c_char = ptr::null_mut();
    let mut utf8: *mut c_char = ptr::null_mut();
    // SAFETY: a valid context and writable out-pointers.
    let rc = unsafe { sbterror(ctx, 0, &mut code, &mut native, &mut utf8) };
    if rc != 0 {
        return None;
    }
    // SAFETY: sbterror returned a NUL-terminated text valid until the next call.
    let text = unsafe { std::ffi::CStr::from_ptr(native) }
        .to_string_lossy()
        .into_owned();
    Some((code as u64, text))
}

#[test]
fn null_pointers_and_out_of_order_calls_fail_cleanly() {
    // SAFETY: every call passes NULL or valid memory; the point is that NULLs are rejected.
    unsafe {
        assert_eq!(
            sbtinit(ptr::null_mut(), ptr::null_mut(), ptr::null_mut()),
            -1
        );
        let mut b = Bserc {
            bsercoer: 0,
            bsercerrno: 0,
        };
        let mut out: *mut Pair = ptr::null_mut();
        assert_eq!(sbtinit(&mut b, ptr::null_mut(), &mut out), 0);
        assert!(!out.is_null());

        assert_eq!(
            sbtinit2(ptr::null_mut(), 0, ptr::null_mut(), ptr::null_mut()),
            -1
        );
        assert_eq!(sbtwrite2(ptr::null_mut(), 0, ptr::null_mut()), -1);
        assert_eq!(sbtread2(ptr::null_mut(), 0, ptr::null_mut()), -1);
        assert_eq!(sbtclose2(ptr::null_mut(), 0), -1);
        assert_eq!(sbtend(ptr::null_mut(), 0), -1);
        assert_eq!(
            sbterror(
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut()
            ),
            -1
        );

        // A zeroed context that sbtinit2 never set up: every call fails, sbtend is harmless.
        let mut ctx = vec![0u8; CTX_SIZE];
        let c = ctx.as_mut_ptr().cast::<c_void>();
        assert_eq!(sbtwrite2(c, 0, ptr::null_mut()), -1);
        assert_eq!(sbtclose2(c, 0), -1);
        assert_eq!(sbtend(c, 0), 0);

        // sbtinit2 without any ORCA_REPO in the environment: fails naming the setting, and the
        // context is usable for sbterror.
        let end = [Pair {
            tag: 9999,
            value: ptr::null_mut(),
        }];
        let mut init_out: *mut Pair = ptr::null_mut();
        assert_eq!(sbtinit2(c, 0, end.as_ptr() as *mut Pair, &mut init_out), -1);
        let (code, text) = error_of(c).expect("pending error");
        assert_eq!(code, 7501);
        assert!(text.contains("ORCA_REPO"), "{text}");

        // Calls out of order on an initialised-but-unconfigured channel.
        let mut buf = vec![0u8; 8192];
        assert_eq!(sbtread2(c, 0, buf.as_mut_ptr().cast()), -1);
        assert!(error_of(c).unwrap().1.contains("sbtrestore first"));
        assert_eq!(sbtwrite2(c, 0, buf.as_mut_ptr().cast()), -1);
        assert_eq!(sbtclose2(c, 0), -1);
        assert_eq!(sbtclose2(c, 0), -1, "double close");

        // Names of 512 bytes and more are refused before anything else.
        let long = CString::new("x".repeat(600)).unwrap();
        assert_eq!(
            sbtbackup(
                c,
                0,
                long.as_ptr() as *mut c_char,
                ptr::null_mut(),
                8192,
                0,
                1,
                0
            ),
            -1
        );
        assert!(error_of(c).unwrap().1.contains("longer than"));
        assert_eq!(sbtrestore(c, 0, ptr::null_mut(), 8192), -1);
        assert!(error_of(c).unwrap().1.contains("NULL"));
        assert_eq!(sbtremove2(c, 0, ptr::null_mut()), -1);
        assert_eq!(sbtinfo2(c, 0, ptr::null_mut(), ptr::null_mut()), -1);

        assert_eq!(sbtend(c, 0), 0);
        assert_eq!(sbtend(c, 0), 0, "a second sbtend is harmless");
        assert_eq!(error_of(c), None);
    }
}
