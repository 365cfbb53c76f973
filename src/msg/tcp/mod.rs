//! TCP server and client (WIRE.md §1.4: frames back to back on the stream, no handshake).
//!
//! Each connection has a reader task and a writer task. The writer drains a queue bounded in
//! bytes (`queue_bytes`), writing whatever is queued in one `write_all`. A sender waits for room
//! (backpressure: a client that does not read its replies stops being read); notifications and
//! broadcasts to a full queue follow [`SlowConsumer`], so a subscriber that stops reading never
//! makes the server buffer without bound.

mod client;
mod conn;
mod server;

use std::sync::Mutex;

pub use client::{Backoff, Client, ClientConfig};
pub use server::{Call, Server, ServerConfig, ServerStats, SlowConsumer};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
