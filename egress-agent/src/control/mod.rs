//! The control socket: one JSON request line per connection, one JSON response line back.

pub mod client;
pub mod protocol;
pub mod server;

pub use protocol::{ErrorKind, Request, Response};
