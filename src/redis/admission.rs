//! Admission to the reply budget: a CLIENT LIST waits for room before it is asked for.
//!
//! Large replies are charged to one process-wide budget as they arrive (src/redis/frame.rs,
//! [`REPLY_BUDGET`]), and a reply past it is refused: that is what keeps many hostile ports
//! from adding up. But honest servers add up too: 10,000 targets starting at once, each
//! listing a few hundred clients (~165 kB), had ~300 replies in flight and the budget refused
//! some of them as protocol errors, marking healthy targets down (scripts/scale.sh at 10,000
//! targets on 20 servers). So a poll asks here first for the bytes its listing should need,
//! from the client count INFO just gave, and waits (in FIFO order) while others hold them: the
//! admitted replies together stay within half the budget, and the hard limit at the whole
//! budget is left for what no estimate foresaw (a server that lied in INFO, a name of several
//! MiB).

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::redis::frame::{CHARGED_FROM, REPLY_BUDGET};

/// What admitted listings may hold at once, in KiB.
const ADMITTED_KIB: usize = REPLY_BUDGET / 2 / 1024;

/// The bytes a CLIENT LIST line is counted for here: real lines are ~250-400 bytes (Redis 7,
/// `tests/fixtures`), so the estimate errs towards waiting, never towards the hard limit.
pub const LINE_BYTES: usize = 512;

static ROOM: Semaphore = Semaphore::const_new(ADMITTED_KIB);

/// Room for a reply (or replies held at once) of about `bytes`, held until dropped.
#[derive(Debug)]
pub struct Admitted {
    _permit: Option<SemaphorePermit<'static>>,
}

/// Waits until `bytes` more fit among the admitted replies. A request below what the budget
/// charges at all is admitted at once; one larger than all the room is counted as all of it
/// (it waits for every other to finish, then goes alone).
pub async fn admit(bytes: usize) -> Admitted {
    admit_from(&ROOM, ADMITTED_KIB, bytes).await
}

/// The KiB a request of `bytes` takes from room of `capacity_kib`.
fn weight(capacity_kib: usize, bytes: usize) -> u32 {
    if bytes < CHARGED_FROM {
        return 0;
    }
    let kib = bytes.div_ceil(1024).min(capacity_kib);
    u32::try_from(kib).unwrap_or(u32::MAX)
}

async fn admit_from(room: &'static Semaphore, capacity_kib: usize, bytes: usize) -> Admitted {
    let kib = weight(capacity_kib, bytes);
    if kib == 0 {
        return Admitted { _permit: None };
    }
    // The semaphore is never closed, so acquiring only fails if it were; then go unadmitted
    // (the hard limit still holds) rather than fail the poll.
    Admitted {
        _permit: room.acquire_many(kib).await.ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn small_replies_take_no_room_and_large_ones_are_capped_at_all_of_it() {
        assert_eq!(weight(100, CHARGED_FROM - 1), 0);
        assert_eq!(weight(100, CHARGED_FROM), 64);
        assert_eq!(weight(10, CHARGED_FROM), 10);
        assert_eq!(weight(1000, 65 * 1024 + 1), 66);
        assert_eq!(weight(1000, usize::MAX), 1000);
        assert_eq!(weight(ADMITTED_KIB, REPLY_BUDGET * 4), ADMITTED_KIB as u32);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn admitted_replies_never_hold_more_than_the_room_and_all_get_their_turn() {
        static LOCAL: Semaphore = Semaphore::const_new(1000);
        let held = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        // 40 listings of 300 KiB into room for 1,000 KiB: at most 3 at once.
        for _ in 0..40 {
            let (held, peak) = (Arc::clone(&held), Arc::clone(&peak));
            tasks.push(tokio::spawn(async move {
                let _room = admit_from(&LOCAL, 1000, 300 * 1024).await;
                let now = held.fetch_add(300, Ordering::SeqCst) + 300;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                held.fetch_sub(300, Ordering::SeqCst);
            }));
        }
        // One larger than all the room takes all of it: it holds the room alone.
        let alone = tokio::spawn(async {
            let _room = admit_from(&LOCAL, 1000, 10 << 20).await;
            LOCAL.available_permits()
        });
        for t in tasks {
            t.await.expect("a listing task");
        }
        assert_eq!(alone.await.expect("the large listing"), 0);
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= 1000, "admitted {peak} KiB at once into 1,000");
        assert!(
            peak >= 600,
            "the room was not shared: at most {peak} KiB at once"
        );
        assert_eq!(LOCAL.available_permits(), 1000, "room given back");
    }
}
