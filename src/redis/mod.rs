//! Talking to Redis and reading what it says: TLS, INFO, CLIENT LIST parsing, and the bounding
//! of every value that came from Redis before it becomes a label. Nothing here knows about
//! targets, the store or HTTP.

pub mod admission;
pub mod chunked;
pub mod client_list;
pub mod commands;
pub mod connection;
pub mod frame;
pub mod info;
pub mod label;
pub mod resp;
pub mod tls;
pub mod untrusted;
