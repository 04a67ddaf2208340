//! The hot path allocates nothing per line: a counting global allocator proves it.
//! (This file holds one test only: the allocator is global to the test binary.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use redis_clients_exporter::aggregate::Aggregator;
use redis_clients_exporter::client_list::lines;
use redis_clients_exporter::synthetic;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    COUNT.with(Cell::get)
}

#[test]
fn parse_and_aggregate_allocate_nothing_per_line_after_warm_up() {
    let reply = synthetic::client_list(20_000, 500, 40);
    let mut agg = Aggregator::new(60);
    // Warm-up: the first snapshot copies each distinct key once.
    let first = agg.summarize(&reply, 50);
    assert_eq!(first.connections, 20_000);

    let per_line = allocations(|| {
        agg.begin();
        for entry in lines(&reply) {
            match entry {
                Ok(e) => agg.add(&e),
                Err(_) => agg.add_error(),
            }
        }
    });
    assert_eq!(
        per_line, 0,
        "parse + aggregate of 20,000 warm lines allocated {per_line} times"
    );
    let folded = agg.finish(50);
    assert_eq!(folded.connections, 20_000);

    // A whole snapshot (with the top-K folding) costs the same whatever the line count.
    let small = synthetic::client_list(2_000, 500, 40);
    agg.summarize(&small, 50);
    let n_small = allocations(|| {
        agg.summarize(&small, 50);
    });
    agg.summarize(&reply, 50);
    let n_large = allocations(|| {
        agg.summarize(&reply, 50);
    });
    assert_eq!(
        n_small, n_large,
        "allocations grew with the line count: {n_small} for 2k lines, {n_large} for 20k"
    );
}
