//! A webhook receiver on loopback: a real HTTP/1.1 server (one request per connection) that
//! answers each POST with the next scripted status (200 once the script runs out) and hands
//! every request it read to the test.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

pub struct Received {
    pub path: String,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status it was answered.
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a webhook body is JSON")
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    requests: mpsc::Receiver<Received>,
}

impl Receiver {
    /// Listens on a free loopback port.
    pub fn start(script: &[u16]) -> Receiver {
        Receiver::start_on(0, script)
    }

    /// Listens on `port` (0: any free one).
    pub fn start_on(port: u16, script: &[u16]) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let (tx, requests) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let Some(mut received) = read_request(&mut stream) else {
                    continue;
                };
                let status = script.lock().unwrap().pop_front().unwrap_or(200);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                received.answered = status;
                if tx.send(received).is_err() {
                    return;
                }
            }
        });
        Receiver { addr, requests }
    }

    /// The next request, failing the test after `wait`.
    pub fn next(&self, wait: Duration) -> Received {
        self.requests
            .recv_timeout(wait)
            .unwrap_or_else(|_| panic!("no webhook request within {wait:?}"))
    }

    /// Whether another request arrives within `wait`.
    pub fn try_next(&self, wait: Duration) -> Option<Received> {
        self.requests.recv_timeout(wait).ok()
    }
}

/// A free loopback port, for a receiver started later (nothing listens there meanwhile:
/// connections are refused).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The request on `stream` (its `answered` still 0).
fn read_request(stream: &mut std::net::TcpStream) -> Option<Received> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = raw[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Some(Received {
        path,
        headers,
        body,
        answered: 0,
    })
}

/// A receiver that reads each request and never answers, holding the connection open: the
/// worst a receiver can do to a sender that waits on it.
pub struct StuckReceiver {
    pub addr: SocketAddr,
    requests: mpsc::Receiver<Received>,
}

impl StuckReceiver {
    pub fn start() -> StuckReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, requests) = mpsc::channel();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                if let Some(received) = read_request(&mut stream) {
                    held.push(stream);
                    if tx.send(received).is_err() {
                        return;
                    }
                }
            }
        });
        StuckReceiver { addr, requests }
    }

    /// The next request it read (and will never answer).
    pub fn next(&self, wait: Duration) -> Received {
        self.requests
            .recv_timeout(wait)
            .unwrap_or_else(|_| panic!("no webhook request within {wait:?}"))
    }
}
