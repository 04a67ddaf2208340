//! What a poll's replies add up to: CLIENT LIST folded into bounded aggregates, the bounded
//! history of past polls, and synthetic replies for benchmarks and tests. Pure data: no I/O.

pub mod aggregate;
pub mod history;
pub mod synthetic;
