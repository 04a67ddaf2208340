//! HTTP: the server and its routes, the Prometheus metric families, and the rendering of
//! diagnosis reports (text, JSON, HTML). Handlers read the store; none talks to Redis itself.

pub mod exposition;
pub mod http;
pub mod metrics;
pub mod relief;
pub mod render;
