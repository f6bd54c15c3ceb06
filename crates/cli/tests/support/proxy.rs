//! TCP relays for network failures.
//!
//! - [`LossyProxy`]: between a provider and its coordinator, told to lose answers: while
//!   "dropping", the first bytes of any response close the client's connection instead of being
//!   passed on, so the request has reached (and been acted on by) the coordinator but the caller
//!   never learns the outcome — the network failure a crash between commit and reply looks like.
//!   While "unavailable", it answers every request itself with a 503, as a coordinator whose
//!   disk is full does, without passing it on.
//! - [`Gate`]: in front of a validator, for partitions. Validators listen on their own 127.x
//!   addresses and connect out from them; a gate passes nothing to or from an address in the
//!   shared cut set, closing the connections it relays when the set changes.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct LossyProxy {
    pub url: String,
    dropping: Arc<AtomicBool>,
    unavailable: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    fetches: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl LossyProxy {
    /// Relays `127.0.0.1:<new port>` to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> LossyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let dropping = Arc::new(AtomicBool::new(false));
        let unavailable = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let fetches = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_string();
        let counters = Counters {
            dropping: dropping.clone(),
            unavailable: unavailable.clone(),
            refused: refused.clone(),
            dropped: dropped.clone(),
            fetches: fetches.clone(),
        };
        let s = stop.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                relay(client, server, counters.clone());
            }
        });
        LossyProxy {
            url: format!("http://{addr}"),
            dropping,
            unavailable,
            refused,
            dropped,
            fetches,
            stop,
            addr,
        }
    }

    /// Starts or stops losing responses.
    pub fn drop_responses(&self, on: bool) {
        self.dropping.store(on, Ordering::SeqCst);
    }

    /// Starts or stops answering every request with a 503 (without passing it on).
    pub fn answer_unavailable(&self, on: bool) {
        self.unavailable.store(on, Ordering::SeqCst);
    }

    /// How many requests were answered with a 503 so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// How many work fetches were passed on to the coordinator so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    /// How many responses were lost so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

#[derive(Clone)]
struct Counters {
    dropping: Arc<AtomicBool>,
    unavailable: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    fetches: Arc<AtomicU64>,
}

fn relay(client: TcpStream, server: TcpStream, counters: Counters) {
    let Counters {
        dropping,
        unavailable,
        refused,
        dropped,
        fetches,
    } = counters;
    let (Ok(mut c_read), Ok(mut s_write), Ok(mut c_answer)) =
        (client.try_clone(), server.try_clone(), client.try_clone())
    else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if unavailable.load(Ordering::SeqCst) {
                        refused.fetch_add(1, Ordering::SeqCst);
                        let body =
                            r#"{"error":"unavailable","detail":"the proxy says: unavailable"}"#;
                        let answer = format!(
                            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = c_answer.write_all(answer.as_bytes());
                        let _ = c_answer.shutdown(Shutdown::Both);
                        break;
                    }
                    // A request's head arrives in one write; count work fetches (alone or in an
                    // exchange with a report) by their line.
                    let head = &buf[..n];
                    if head.starts_with(b"POST /v1/work/fetch ")
                        || head.starts_with(b"POST /v1/work/exchange ")
                    {
                        fetches.fetch_add(1, Ordering::SeqCst);
                    }
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match s_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if dropping.load(Ordering::SeqCst) {
                        dropped.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    if c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = c_write.shutdown(Shutdown::Both);
        let _ = s_read.shutdown(Shutdown::Both);
    });
}

/// Addresses cut off from everybody, shared by the [`Gate`]s of a cluster.
pub type CutSet = Arc<std::sync::Mutex<std::collections::BTreeSet<std::net::IpAddr>>>;

/// A relay in front of one validator: `127.0.0.1:<port>` to `upstream`.
pub struct Gate {
    pub url: String,
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Gate {
    /// Relays to the validator at `upstream`; connections are refused and closed while its
    /// address, or the address a connection comes from, is in `cut`.
    pub fn start(upstream: std::net::SocketAddr, cut: CutSet) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the gate");
        let addr = listener.local_addr().expect("gate address");
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(from) = client.peer_addr() else {
                    continue;
                };
                let blocked = {
                    let cut = cut.clone();
                    move || {
                        let cut = cut.lock().unwrap_or_else(|p| p.into_inner());
                        cut.contains(&upstream.ip()) || cut.contains(&from.ip())
                    }
                };
                if blocked() {
                    continue; // dropped: the connection closes
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                gated_relay(client, server, Arc::new(blocked), s.clone());
            }
        });
        Gate {
            url: format!("http://{addr}"),
            addr,
            stop,
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies both ways until either side closes, `blocked()` turns true or the gate stops.
fn gated_relay(
    client: TcpStream,
    server: TcpStream,
    blocked: Arc<dyn Fn() -> bool + Send + Sync>,
    stop: Arc<AtomicBool>,
) {
    let pairs = [
        (client.try_clone(), server.try_clone()),
        (server.try_clone(), client.try_clone()),
    ];
    for (from, to) in pairs {
        let (Ok(mut from), Ok(mut to)) = (from, to) else {
            return;
        };
        let blocked = blocked.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let _ = from.set_read_timeout(Some(std::time::Duration::from_millis(50)));
            let mut buf = [0u8; 16 * 1024];
            loop {
                if blocked() || stop.load(Ordering::SeqCst) {
                    break;
                }
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
    }
}
