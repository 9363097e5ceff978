//! Signals: SIGTERM/SIGINT start the graceful shutdown, a second one cuts it short;
//! SIGHUP reloads the config.

use tokio::signal::unix::{Signal, SignalKind, signal};

pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

/// What a signal asks for.
pub enum Request {
    Shutdown(&'static str),
    Reload,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    pub async fn next(&mut self) -> Request {
        tokio::select! {
            _ = self.term.recv() => Request::Shutdown("SIGTERM"),
            _ = self.int.recv() => Request::Shutdown("SIGINT"),
            _ = self.hup.recv() => Request::Reload,
        }
    }

    /// Waits for a second SIGTERM/SIGINT (ignoring SIGHUP while shutting down).
    pub async fn next_shutdown(&mut self) -> &'static str {
        loop {
            if let Request::Shutdown(name) = self.next().await {
                return name;
            }
        }
    }
}
