//! SIP over one UDP socket for every call of a run: a reader task hands each response to the
//! call it belongs to (by Call-ID) and answers the server's own requests (its BYE, OPTIONS);
//! each call runs its transactions with RFC 3261 retransmissions (timer A).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use callvault_client::sip::{self, Message};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const T1: Duration = Duration::from_millis(500);
const GIVE_UP: Duration = Duration::from_secs(32);

/// The responses each call is waiting for, by Call-ID.
type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Message>>>>;

pub(crate) struct Signalling {
    socket: Arc<UdpSocket>,
    routes: Routes,
    pub local: SocketAddr,
    pub server: SocketAddr,
}

impl Signalling {
    pub(crate) async fn open(server: SocketAddr) -> anyhow::Result<Arc<Signalling>> {
        let any = if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(any).await?;
        socket.connect(server).await?;
        let socket = Arc::new(socket);
        let local = socket.local_addr()?;
        let routes: Routes = Arc::default();
        let reader = Arc::clone(&socket);
        let reader_routes = Arc::clone(&routes);
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 65_535];
            while let Ok(n) = reader.recv(&mut buffer).await {
                let Ok(Some((message, _))) = sip::take_message(&buffer[..n]) else {
                    continue;
                };
                if message.status.is_none() {
                    // The server's BYE (a timeout, a shutdown) or OPTIONS: answered here; the
                    // call sees it as the end of its media in the catalog.
                    let _ = reader.send(&sip::response_to(&message, 200, "OK")).await;
                    continue;
                }
                let Some(call_id) = message.header("call-id") else {
                    continue;
                };
                let route = reader_routes
                    .lock()
                    .expect("no thread panics holding the routes")
                    .get(call_id)
                    .cloned();
                if let Some(route) = route {
                    let _ = route.send(message);
                }
            }
        });
        Ok(Arc::new(Signalling {
            socket,
            routes,
            local,
            server,
        }))
    }

    /// Routes the responses of `call_id` to the returned receiver until [`Signalling::forget`].
    pub(crate) fn register(&self, call_id: &str) -> mpsc::UnboundedReceiver<Message> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes
            .lock()
            .expect("no thread panics holding the routes")
            .insert(call_id.to_owned(), tx);
        rx
    }

    pub(crate) fn forget(&self, call_id: &str) {
        self.routes
            .lock()
            .expect("no thread panics holding the routes")
            .remove(call_id);
    }

    pub(crate) async fn send(&self, bytes: &[u8]) -> anyhow::Result<()> {
        self.socket.send(bytes).await.context("sending SIP")?;
        Ok(())
    }

    /// Sends `request` and waits for its final response, retransmitting (T1 doubling up to
    /// 4 s) until a provisional response or 32 s.
    pub(crate) async fn transaction(
        &self,
        responses: &mut mpsc::UnboundedReceiver<Message>,
        request: &[u8],
        method: &str,
    ) -> anyhow::Result<Message> {
        self.send(request).await?;
        let deadline = tokio::time::Instant::now() + GIVE_UP;
        let mut interval = T1;
        let mut retransmit = true;
        loop {
            let wait = if retransmit { interval } else { GIVE_UP };
            match tokio::time::timeout(wait, responses.recv()).await {
                Ok(Some(message)) => {
                    if message.cseq_method() != Some(method) {
                        continue;
                    }
                    match message.status {
                        Some(status) if status < 200 => retransmit = false,
                        _ => return Ok(message),
                    }
                }
                Ok(None) => bail!("the signalling socket closed"),
                Err(_) if tokio::time::Instant::now() < deadline && retransmit => {
                    self.send(request).await?;
                    interval = (interval * 2).min(Duration::from_secs(4));
                }
                Err(_) => bail!("no answer to the {method} in {} s", GIVE_UP.as_secs()),
            }
        }
    }
}
