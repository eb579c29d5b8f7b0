//! A capture file truncated while it is memory-mapped (`cp new old`, `rsync --inplace`, a
//! rotation tool truncating in place) makes the next access past its new end raise SIGBUS,
//! which would kill the whole run. Mapped captures register their address range here; a
//! SIGBUS handler that finds the faulting address in a registered range maps a page of zeros
//! over it (so the access completes) and records the fault, and the reader, which checks for
//! it before every record, stops that file with an error. A SIGBUS anywhere else gets the
//! default action, as before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// Mappings protected at once (one per file being read; more are read unprotected).
const SLOTS: usize = 64;

struct Slot {
    /// Start address of the mapping, 0 when the slot is free.
    start: AtomicUsize,
    len: AtomicUsize,
    /// Offset in the mapping of the first faulting page plus one, 0 when none.
    fault: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    fault: AtomicUsize::new(0),
};
static SLOTS_IN_USE: [Slot; SLOTS] = [FREE; SLOTS];
static INSTALL: Once = Once::new();
/// The fault word of a mapping no slot protects: never set.
static NEVER: AtomicUsize = AtomicUsize::new(0);

/// A registered mapping; unregistered when dropped.
pub struct Guard {
    slot: Option<usize>,
    /// The slot's fault word (a word never set when no slot was free), checked before every
    /// record.
    fault: &'static AtomicUsize,
}

impl Guard {
    /// Protect `len` bytes mapped at `start` (none when every slot is taken).
    pub fn register(start: *const u8, len: usize) -> Guard {
        INSTALL.call_once(install);
        if len == 0 {
            return Guard {
                slot: None,
                fault: &NEVER,
            };
        }
        for (i, s) in SLOTS_IN_USE.iter().enumerate() {
            if s.start
                .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                s.len.store(len, Ordering::Release);
                s.fault.store(0, Ordering::Release);
                s.start.store(start as usize, Ordering::Release);
                return Guard {
                    slot: Some(i),
                    fault: &s.fault,
                };
            }
        }
        Guard {
            slot: None,
            fault: &NEVER,
        }
    }

    /// The offset (page start) in the mapping where an access found the file truncated.
    #[inline(always)]
    pub fn fault(&self) -> Option<usize> {
        match self.fault.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n - 1),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            SLOTS_IN_USE[i].start.store(0, Ordering::Release);
        }
    }
}

fn install() {
    // SAFETY: a zeroed sigaction is a valid value to fill in; the handler is an
    // `extern "C"` function with the SA_SIGINFO signature; sigaction only reads `act`.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = handler as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut());
    }
}

extern "C" fn handler(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for a SIGBUS; `si_addr` is the faulting address.
    let addr = unsafe { (*info).si_addr() } as usize;
    // Several readers may have registered the same map (byte ranges of one file read on
    // several threads): every one of them is told, since the page of zeros is there for all.
    let mut mapped = false;
    for s in SLOTS_IN_USE.iter() {
        let start = s.start.load(Ordering::Acquire);
        if start == 0 || start == usize::MAX {
            continue;
        }
        let len = s.len.load(Ordering::Acquire);
        if addr < start || addr >= start + len {
            continue;
        }
        // SAFETY: sysconf is async-signal-safe in practice on Linux (a read of auxv).
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let at = addr & !(page - 1);
        if !mapped {
            // SAFETY: replaces one page of our own read-only mapping of the truncated file,
            // inside its registered range, with zeros; the mapping stays valid until it is
            // unmapped as a whole. mmap is a plain system call.
            let p = unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                break;
            }
            mapped = true;
        }
        let _ = s.fault.compare_exchange(
            0,
            at.saturating_sub(start) + 1,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
    if mapped {
        return;
    }
    // Not a capture of ours: the default action, which the faulting access raises again.
    // SAFETY: resetting a signal's disposition is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
}
