//! A counting global allocator for the test binaries that measure allocations (tests/alloc.rs)
//! and live bytes (tests/memory.rs). Included by `#[path]` so that it is global only to those
//! two binaries; written with `unsafe`, the one place outside src/ allowed it (Cargo.toml).
#![allow(unsafe_code, dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

struct Counting;

// Global, not per thread: a large reply's second half is aggregated on a helper thread, and
// its allocations count too.
static COUNTING: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated and not yet freed, by every thread, always counted.
static LIVE: AtomicI64 = AtomicI64::new(0);
/// The most `LIVE` has been since [`reset_peak`].
static PEAK: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            COUNT.fetch_add(1, Relaxed);
        }
        let now = LIVE.fetch_add(layout.size() as i64, Relaxed) + layout.size() as i64;
        PEAK.fetch_max(now, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            COUNT.fetch_add(1, Relaxed);
        }
        let grow = new_size as i64 - layout.size() as i64;
        PEAK.fetch_max(LIVE.fetch_add(grow, Relaxed) + grow, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The counts are process-wide: the tests of a binary that uses them run one at a time.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Allocations (and reallocations) made by `f`, on any thread.
pub fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
    f();
    COUNTING.store(false, Relaxed);
    COUNT.load(Relaxed)
}

/// Bytes allocated and not yet freed, now.
pub fn live() -> i64 {
    LIVE.load(Relaxed)
}

/// Starts counting the peak of live bytes from now.
pub fn reset_peak() {
    PEAK.store(LIVE.load(Relaxed), Relaxed);
}

/// The most bytes live at once since [`reset_peak`].
pub fn peak() -> i64 {
    PEAK.load(Relaxed)
}
