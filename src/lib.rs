//! Parlor: a real-time messaging server. One process, one redb file, WebSocket first,
//! REST as the fallback, and the routes of four existing chat APIs over one core.
//!
//! [`run`] starts everything on a listener the caller bound (tests bind port 0) and returns
//! a [`Running`] server; [`Running::wait`] serves until the server is stopped (a signal or
//! [`Running::handle`]), then lets the Router commit its cursors and the Writer commit what
//! it holds, and returns.
//!
//! Modules: [`server`] (start, listeners, shutdown), [`config`] (TOML + `PARLOR_*` env),
//! [`error`] (the error kinds, their HTTP statuses and WebSocket codes), [`auth`] (tokens,
//! passwords, visitor signatures), [`guard`] (the bounds of logging in), [`intake`] (connection limits and body deadlines), [`cors`] (which web origins may call from a browser), [`peer`] (the client's address, behind trusted proxies too), [`core`] (the operations, once), [`faces`] (the four HTTP
//! APIs over the core), [`ws`] (the WebSocket session actor), [`state`] (what handlers
//! share), [`files`] (uploads, the object store, video screenshots), [`dump`] (export and
//! import), [`routes`] (listable route registration), [`openapi`] (the OpenAPI documents),
//! [`metrics`] (Prometheus), [`memory`] (the process's memory figures), [`cluster`] (the
//! replicated log of cluster mode) and [`web`] (the web
//! chat client served at `/`).

pub mod auth;
pub mod cluster;
pub mod config;
pub mod core;
pub mod cors;
pub mod dump;
pub mod error;
pub mod faces;
pub mod files;
pub mod guard;
pub mod intake;
pub mod memory;
pub mod metrics;
pub mod openapi;
pub mod peer;
pub mod routes;
pub mod server;
pub mod state;
pub mod web;
pub mod ws;

pub use server::{admin_routes, client_routes, run, Running, StartError};
