//! Connection caps on the proxy listener: at most `server.max_connections` open at once (past
//! it, new connections wait in the listen backlog), and at most
//! `server.max_connections_per_ip` from one socket address (past it, a new one is closed at
//! once and counted). The per-address table holds only addresses with open connections, so it
//! is as large as the connections themselves and no larger.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use palisade_telemetry::metrics::Metrics;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Caps {
    total: Arc<Semaphore>,
    per_ip: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    metrics: Arc<Metrics>,
}

/// One open connection's place under the caps, given back when it is dropped.
pub struct Place {
    caps: Arc<Caps>,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Caps {
    /// `per_ip` 0: no cap per address.
    pub fn new(total: usize, per_ip: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            total: Arc::new(Semaphore::new(total.max(1))),
            per_ip,
            open: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// Waits for room under the listener's cap: accept only once this returns.
    pub async fn room(&self) -> OwnedSemaphorePermit {
        self.total
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// The connection's place, or `None` when its address has its cap of connections open.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, permit: OwnedSemaphorePermit) -> Option<Place> {
        let ip = ip.to_canonical();
        if self.per_ip > 0 {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let count = open.entry(ip).or_insert(0);
            if *count >= self.per_ip {
                drop(open);
                self.metrics.connection_refused("per_ip");
                return None;
            }
            *count += 1;
        }
        self.metrics.connections_open(1);
        Some(Place {
            caps: self.clone(),
            ip,
            _permit: permit,
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.caps.metrics.connections_open(-1);
        if self.caps.per_ip == 0 {
            return;
        }
        let mut open = self.caps.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
