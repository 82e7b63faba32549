//! keygate: one deploy-key core served through the GitHub, GitLab and CodeArts Repo APIs.

pub mod auth;
pub mod cli;
pub mod config;
pub mod core;
pub mod dialect;
mod front;
pub mod http;
pub mod server;
pub mod ssh;
pub mod store;
pub mod telemetry;
