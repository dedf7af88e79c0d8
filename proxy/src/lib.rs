//! actas: an identity layer in front of a web-hosting control panel.
//!
//! Staff and customers sign in at the proxy; staff can sign in as a customer; every
//! forwarded request carries a signed identity assertion naming both; a banner marks every
//! impersonated page; every request is on the audit record. The modules follow the
//! request's life (see [`proxy`]'s phase chart) and each owns one concern.

pub mod app;
pub mod assertion;
pub mod audit;
pub mod banner;
pub mod certs;
pub mod cli;
pub mod config;
pub mod console;
pub mod demo;
pub mod device;
pub mod digest;
pub mod directory;
pub mod forwarding;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod session;
pub mod store;
