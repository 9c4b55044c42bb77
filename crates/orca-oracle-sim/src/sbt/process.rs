//! Killing the rman process tree outright (the `ORACLESIM_KILL_AFTER_BYTES` fault): SIGKILL to
//! every channel server, then to rman itself, so nothing gets a chance to clean up, as when a
//! database host crashes.

// libc::kill is the only way to deliver SIGKILL to ourselves.
#![allow(unsafe_code)]

use std::sync::Mutex;

static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Remembers a channel server so a process-tree kill reaches it.
pub fn register_child(pid: u32) {
    CHILDREN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(pid);
}

/// Forgets a channel server that has exited.
pub fn unregister_child(pid: u32) {
    CHILDREN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|p| *p != pid);
}

/// SIGKILL every registered channel server, then this process.
pub fn kill_process_tree() -> ! {
    let pids = CHILDREN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    for pid in pids {
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill(2) on a pid we spawned; at worst it has already exited (ESRCH).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    // SAFETY: kill(2) on our own pid with SIGKILL; it does not return.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    std::process::abort()
}
