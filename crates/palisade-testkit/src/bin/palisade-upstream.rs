//! `palisade-upstream`: the test kit's upstream as a foreground server, for the README demo
//! and manual testing. Query parameters choose its behaviour; see the `upstream` module.

#![forbid(unsafe_code)]

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use palisade_testkit::UpstreamServer;
use tokio::signal::unix::{SignalKind, signal};

/// A demo upstream: echoes requests as JSON; ?status=, ?latency=, ?size=, ?close=1,
/// ?set_header=name:value and WebSocket echo on /ws.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let server = UpstreamServer::start_on(args.listen).await?;
    println!("palisade-upstream listening on {}", server.addr());
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    server.shutdown().await;
    Ok(())
}
