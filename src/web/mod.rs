//! HTTP: the server and its routes, the Prometheus metric families, and the rendering of
//! diagnosis reports (text, JSON, HTML). Handlers read the store; none talks to Redis itself.

pub mod accept;
pub mod auth;
pub mod build_info;
pub mod escape;
pub mod exposition;
pub mod http;
pub mod landing;
pub mod live_config;
pub mod metrics;
pub mod negotiate;
pub mod relief;
pub mod render;
pub mod svg;
pub mod timeline;
pub mod tls_server;
