//! A small TCP proxy put in front of a bank's replicas for its peers: it passes traffic through,
//! delays it, drops connections, or black-holes them (accepts and never answers), switchable at
//! any moment. The cluster lists the proxy's address in the network file, so every interbank
//! call to the bank goes through it while customers and operators reach the bank directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to each new connection (and to the data of live ones, for `Delay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    /// Every connection waits this long before it is forwarded.
    Delay(u64),
    /// Connections are closed at once (the bank looks down).
    Drop,
    /// Connections are accepted and never answered (a partition: callers time out).
    BlackHole,
}

const PASS: u64 = 0;
const DROP: u64 = u64::MAX;
const BLACK_HOLE: u64 = u64::MAX - 1;

/// A running proxy; dropped with the runtime.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    pub upstream: SocketAddr,
    mode: Arc<AtomicU64>,
    /// Connections served since the start, for reports.
    pub connections: Arc<AtomicU64>,
}

impl Proxy {
    /// Listens on `listen` (taken by the caller from a free port) and forwards to `upstream`.
    pub fn start(listen: std::net::TcpListener, upstream: SocketAddr) -> std::io::Result<Proxy> {
        listen.set_nonblocking(true)?;
        let addr = listen.local_addr()?;
        let listener = TcpListener::from_std(listen)?;
        let p = Proxy { addr, upstream, mode: Arc::new(AtomicU64::new(PASS)), connections: Arc::default() };
        let (mode, count) = (p.mode.clone(), p.connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                count.fetch_add(1, Relaxed);
                let m = mode.load(Relaxed);
                let mode = mode.clone();
                tokio::spawn(async move {
                    if m == DROP {
                        let _ = inbound.shutdown().await;
                        return;
                    }
                    let Ok(out) = TcpStream::connect(upstream).await else { return };
                    let (r1, w1) = inbound.into_split();
                    let (r2, w2) = out.into_split();
                    // Both directions obey the mode chunk by chunk, so pooled keep-alive
                    // connections are partitioned or slowed as well as new ones.
                    tokio::join!(pump(r1, w2, mode.clone()), pump(r2, w1, mode));
                });
            }
        });
        Ok(p)
    }

    pub fn set(&self, m: Mode) {
        let v = match m {
            Mode::Pass => PASS,
            Mode::Delay(ms) => ms.clamp(1, BLACK_HOLE - 1),
            Mode::Drop => DROP,
            Mode::BlackHole => BLACK_HOLE,
        };
        self.mode.store(v, Relaxed);
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mode: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            match mode.load(Relaxed) {
                DROP => return,
                // Held, as a partition holds packets: the caller's timeout fires first.
                BLACK_HOLE => tokio::time::sleep(Duration::from_millis(20)).await,
                PASS => break,
                delay => {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    break;
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
