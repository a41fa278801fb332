//! The server's integration tests, one module per face or feature, in one test binary (one
//! link of the whole server instead of one per file). Each test starts a real Parlor on an
//! ephemeral port with a temporary data directory and talks to it over real HTTP and
//! WebSocket clients; `cargo test --test server <module>::` runs one module.

// Helpers shared by the modules.
mod common;

mod accounts;
mod admin;
mod browser;
mod chat21;
mod chatroom;
mod cli;
mod cluster;
mod cluster_nodes;
mod conversations;
mod cors;
mod deploy;
mod files;
mod groups;
mod intake;
mod lifecycle;
mod loadgen_scenarios;
mod loadgen_smoke;
mod messages;
mod metrics;
mod openapi;
mod presence;
mod readme;
mod social;
mod web;
mod webhooks;
