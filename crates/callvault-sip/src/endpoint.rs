//! The sans-IO transaction layer: RFC 3261 §17.2 server transactions (with the RFC 6026
//! "Accepted" state), §17.1.1 INVITE client transactions (with RFC 6026's Accepted state and
//! CANCEL, §9.1), §17.1.2 non-INVITE client transactions, §18.2 response routing and
//! RFC 3581 `rport`. Fed bytes and `Instant`s; returns what to send and when to wake.

use crate::error::Rejection;
use crate::limits::{Bounded, RequestLimits, bound_udp_response};
use crate::message::{Message, Method, Request, Response, salvage_request};
use crate::peer::{Peer, Transmit, TransportKind};
use crate::transaction::{
    AckId, CancelState, ClientState, ClientTransaction, InviteClient, ServerState,
    ServerTransaction, TransactionKey,
};
use crate::via::Via;
use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Timer values and limits. `Default` gives RFC 3261's T1 = 500 ms, T2 = 4 s, T4 = 5 s.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// Larger messages are dropped (or answered 413 when their headers can be read).
    pub max_message_size: usize,
    /// Sent as `Server` in responses and `User-Agent` in requests (empty: not sent).
    pub user_agent: String,
    /// `host[:port]` for the Via of requests we send (our advertised address).
    pub via_sent_by: String,
    /// Server + client transactions kept at once; a new request beyond it gets 503.
    pub max_transactions: usize,
    /// An INVITE the TU never answers finally is forgotten after this long.
    pub invite_unanswered_limit: Duration,
    /// Option tags we support: a request whose `Require` names another is answered 420 with
    /// `Unsupported` (RFC 3261 §8.2.2.3) and never reaches the TU. ACK and CANCEL are exempt.
    pub supported_extensions: Vec<String>,
    /// Caps on a request's Call-ID, header fields and Vias, and on the size of a UDP response
    /// relative to its request (no amplification).
    pub limits: RequestLimits,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            max_message_size: 65535,
            user_agent: String::from("callvault"),
            via_sent_by: String::from("callvault.invalid"),
            max_transactions: 100_000,
            invite_unanswered_limit: Duration::from_secs(180),
            // `100rel`: we send no provisional but 100, so no reliable one is ever owed.
            // `timer`: the TU answers Session-Expires (RFC 4028) via `session_timer::negotiate`;
            // removing it here makes every `Require: timer` request a 420 before the TU sees it.
            supported_extensions: ["siprec", "timer", "100rel"].map(String::from).to_vec(),
            limits: RequestLimits::default(),
        }
    }
}

/// What the endpoint tells the TU.
#[derive(Debug)]
pub enum Event {
    /// A new server transaction: every request except ACK and CANCEL (an INVITE has already been
    /// answered 100 Trying). The top Via carries `received`/`rport` as the response needs them.
    Request {
        key: TransactionKey,
        request: Request,
        from: Peer,
    },
    /// An ACK for a 2xx (its own transaction per RFC 3261), after the endpoint stopped
    /// retransmitting that 2xx; also ACKs matching nothing (the TU ignores them without a dialog).
    Ack { request: Request, from: Peer },
    /// A CANCEL matched an INVITE still without a final response: the CANCEL got its 200; the TU
    /// now answers the INVITE, normally 487.
    Cancelled { key: TransactionKey },
    /// A 2xx (or a non-2xx final) to an INVITE was never ACKed within Timer H: end the dialog.
    AckTimeout {
        key: TransactionKey,
        call_id: String,
    },
    /// A response to a request sent with `send_request` (provisional ones too), or `None` when
    /// Timer F expired without a final response.
    Response {
        key: TransactionKey,
        response: Option<Response>,
    },
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Unparseable input that could not be answered.
    pub malformed_dropped: u64,
    /// Unparseable requests answered 400.
    pub malformed_answered: u64,
    /// Messages over `max_message_size` (answered 413 when possible, else dropped).
    pub oversize: u64,
    /// Retransmitted requests (and ACKs for non-2xx) absorbed by a transaction.
    pub retransmissions_absorbed: u64,
    /// Responses and requests we retransmitted on timers.
    pub retransmissions_sent: u64,
    /// Responses matching no client transaction, dropped.
    pub stray_responses: u64,
    /// `respond` calls for a transaction that is gone or already has a final response.
    pub late_responses: u64,
    /// CRLF keep-alives received.
    pub keepalives: u64,
    /// New requests refused with 503 because `max_transactions` was reached.
    pub overload_rejected: u64,
    /// Requests answered 416 or 420: a Request-URI scheme or a required extension we do not
    /// support.
    pub unsupported_rejected: u64,
    /// Requests refused 400 for a Call-ID, header field or Via list beyond `limits`.
    pub limit_rejected: u64,
    /// UDP responses larger than `limits.max_udp_response_factor` times their request, sent
    /// as a bare 500 instead.
    pub responses_trimmed: u64,
    /// UDP responses not sent at all: even the bare 500 was over the bound.
    pub responses_withheld: u64,
    /// Client transactions ended by a transport error (`handle_transport_error`).
    pub transport_errors: u64,
    /// Transactions that ended without the ACK (Timer H) or without a TU answer.
    pub ack_timeouts: u64,
    pub unanswered_expired: u64,
    /// Transactions alive now.
    pub server_transactions: usize,
    pub client_transactions: usize,
}

/// The transaction layer of one SIP endpoint. Single-threaded, owned by one task.
pub struct Endpoint {
    config: EndpointConfig,
    servers: HashMap<TransactionKey, ServerTransaction>,
    clients: HashMap<TransactionKey, ClientTransaction>,
    acks: HashMap<AckId, TransactionKey>,
    /// Wake-ups; an entry may be stale (its transaction moved on or ended): it then does nothing.
    timers: BinaryHeap<Reverse<(Instant, TransactionKey)>>,
    events: VecDeque<Event>,
    transmits: VecDeque<Transmit>,
    stats: EndpointStats,
    id_seed: RandomState,
    id_counter: u64,
    /// Refusals (caps, trimmed responses) are logged at most once per [`REFUSAL_LOG_INTERVAL`]:
    /// when the last such line was written, and how many refusals it has not told of yet.
    refusal_logged_at: Option<Instant>,
    refusals_untold: u64,
}

/// How often at most a refusal by the caps is logged; a flood is one line per interval.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Self {
        Endpoint {
            config,
            servers: HashMap::new(),
            clients: HashMap::new(),
            acks: HashMap::new(),
            timers: BinaryHeap::new(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            stats: EndpointStats::default(),
            id_seed: RandomState::new(),
            id_counter: 0,
            refusal_logged_at: None,
            refusals_untold: 0,
        }
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// A fresh random token (64 bits, hex) for tags and branches.
    pub fn new_tag(&mut self) -> String {
        self.id_counter += 1;
        let mut hasher = self.id_seed.build_hasher();
        hasher.write_u64(self.id_counter);
        format!("{:016x}", hasher.finish())
    }

    /// One whole message from `from` (drivers frame TCP), received at `now`.
    pub fn handle_input(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            // RFC 5626 keep-alives; the TCP driver answers the double-CRLF ping itself.
            self.stats.keepalives += 1;
            return;
        }
        if bytes.len() > self.config.max_message_size {
            self.stats.oversize += 1;
            self.answer_unparsed(now, from, bytes, Rejection::TooLarge);
            return;
        }
        match Message::parse(bytes) {
            Ok(Message::Request(request)) => self.handle_request(now, from, request, bytes.len()),
            Ok(Message::Response(response)) => self.handle_response(now, response),
            Err(cause) => {
                tracing::debug!(%cause, peer = %from.addr, "malformed SIP message");
                if self.answer_unparsed(now, from, bytes, Rejection::Malformed(cause)) {
                    self.stats.malformed_answered += 1;
                } else {
                    self.stats.malformed_dropped += 1;
                }
            }
        }
    }

    /// A transport could not deliver to `to` (a connect that failed or timed out, a connection
    /// closed because the peer could not keep up, a send error). RFC 3261 §17.1.4: every client
    /// transaction sending there ends at once and the TU sees `Event::Response` with `None`,
    /// as for a timeout. Server transactions keep their timers: a response that cannot be
    /// delivered is the client's to retransmit for. The instant (when the driver reported the
    /// failure) is taken like every input's; nothing here depends on it yet.
    pub fn handle_transport_error(&mut self, _now: Instant, to: &Peer) {
        let failed: Vec<TransactionKey> = self
            .clients
            .iter()
            .filter(|(_, tx)| {
                matches!(tx.state, ClientState::Trying | ClientState::Proceeding)
                    && same_destination(&tx.to, to)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in failed {
            tracing::debug!(%key, peer = %to.addr, "transport error: client transaction failed");
            self.clients.remove(&key);
            self.stats.transport_errors += 1;
            self.events.push_back(Event::Response {
                key,
                response: None,
            });
        }
        // Wake-ups of the removed transactions are stale now; drop those at the top.
        self.purge_stale_timers();
    }

    /// Answers a request the endpoint refuses before parsing completed, from the headers that
    /// could be salvaged; `false` when nothing could be answered.
    fn answer_unparsed(
        &mut self,
        now: Instant,
        from: Peer,
        bytes: &[u8],
        rejection: Rejection,
    ) -> bool {
        let Some(headers) = salvage_request(bytes) else {
            return false;
        };
        let tag = self.new_tag();
        let response = Response::from_salvage(rejection.status(), rejection.reason(), headers)
            .with_to_tag(&tag);
        let Some(via) = response.top_via_sent_by() else {
            return false;
        };
        let to = reply_peer(from, &via);
        self.send_response_bytes(now, to, response, bytes.len());
        true
    }

    /// Sends a provisional or final response in the server transaction `key`.
    ///
    /// RFC 3261 §8.2.6.2: every response but 100 carries a To tag. When the TU's response has
    /// none (an OPTIONS 200, a 405 outside a dialog) the endpoint adds the transaction's own:
    /// one tag per server transaction, the same on every response and retransmission of it. A
    /// tag the TU set (its dialog's, on a 200 OK) is kept.
    pub fn respond(&mut self, now: Instant, key: &TransactionKey, response: Response) {
        let t1 = self.config.t1;
        let response = self.with_server_header(response);
        let Some(tx) = self.servers.get(key) else {
            tracing::debug!(%key, status = response.status(), "response for a transaction that is gone");
            self.stats.late_responses += 1;
            return;
        };
        if tx.has_final() {
            tracing::debug!(%key, status = response.status(), "second final response ignored");
            self.stats.late_responses += 1;
            return;
        }
        let response = match response.to_tag() {
            _ if response.status() == 100 => response,
            Some(tag) => {
                if tx.to_tag.is_none() {
                    let tag = tag.to_owned();
                    if let Some(tx) = self.servers.get_mut(key) {
                        tx.to_tag = Some(tag);
                    }
                }
                response
            }
            None => {
                let tag = self.transaction_tag(key);
                response.with_to_tag(&tag)
            }
        };
        let Some(tx) = self.servers.get(key) else {
            return;
        };
        let (reply_to, request_len) = (tx.reply_to, tx.request_len);
        let bytes = self.bounded(now, reply_to, request_len, &response);
        let Some(tx) = self.servers.get_mut(key) else {
            return;
        };
        if let Some(bytes) = &bytes {
            self.transmits.push_back(Transmit {
                to: tx.reply_to,
                bytes: bytes.clone(),
            });
        }
        // A withheld response is not retransmitted either; the transaction still ends on its
        // timers, as if it had been lost on the way.
        tx.last_response = bytes;
        let unreliable = !tx.reply_to.transport.is_reliable();
        let status = response.status();
        let mut wake = Vec::new();
        if status < 200 {
            tx.state = ServerState::Proceeding;
        } else if tx.invite {
            // Timer H (and RFC 6026 Timer L for a 2xx): 64*T1 to get the ACK.
            tx.end_at = now + 64 * t1;
            wake.push(tx.end_at);
            if unreliable {
                // Timer G for a non-2xx; the same schedule for a 2xx (§13.3.1.4).
                tx.interval = t1;
                tx.retransmit_at = Some(now + t1);
                wake.push(now + t1);
            }
            if status < 300 {
                tx.state = ServerState::Accepted { acked: false };
                let ack_id: AckId = (
                    tx.call_id.clone(),
                    response.cseq().map_or(0, |c| c.0),
                    response.to_tag().unwrap_or("").to_owned(),
                );
                self.acks.insert(ack_id.clone(), key.clone());
                tx.ack_id = Some(ack_id);
            } else {
                tx.state = ServerState::Completed;
            }
        } else {
            tx.state = ServerState::Completed;
            // Timer J: 64*T1 on UDP to absorb retransmissions, 0 on TCP.
            if unreliable {
                tx.end_at = now + 64 * t1;
                wake.push(tx.end_at);
            } else {
                self.remove_server(key);
            }
        }
        for at in wake {
            self.timers.push(Reverse((at, key.clone())));
        }
    }

    /// The To tag of the server transaction `key`, chosen on first use.
    fn transaction_tag(&mut self, key: &TransactionKey) -> String {
        if let Some(tag) = self.servers.get(key).and_then(|tx| tx.to_tag.clone()) {
            return tag;
        }
        let tag = self.new_tag();
        if let Some(tx) = self.servers.get_mut(key) {
            tx.to_tag = Some(tag.clone());
        }
        tag
    }

    /// Starts a non-INVITE client transaction: adds the top Via (with a fresh branch and
    /// `rport`), Max-Forwards and User-Agent when missing, and sends the request.
    /// An INVITE goes through [`Endpoint::send_invite`] instead.
    pub fn send_request(&mut self, now: Instant, to: Peer, request: Request) -> TransactionKey {
        self.start_client(now, to, request, false)
    }

    /// Starts an INVITE client transaction (RFC 3261 §17.1.1 with RFC 6026): Timer A
    /// retransmits over UDP (T1, 2T1, 4T1…) until a response; Timer B (64*T1) without any
    /// response ends it with `Event::Response { response: None }` (the TU answers its own
    /// caller 408). After a provisional the transaction waits up to `invite_unanswered_limit`
    /// for the final (a callee left ringing), then ends the same way. A non-2xx final is
    /// ACKed here, hop by hop, and its retransmissions absorbed (Timer D); a 2xx goes to the
    /// TU, which ACKs it end to end with [`Endpoint::send_ack`]; retransmissions of that 2xx
    /// get the same ACK again for 64*T1 (Timer M) without reaching the TU.
    pub fn send_invite(&mut self, now: Instant, to: Peer, request: Request) -> TransactionKey {
        self.start_client(now, to, request, true)
    }

    fn start_client(
        &mut self,
        now: Instant,
        to: Peer,
        request: Request,
        invite: bool,
    ) -> TransactionKey {
        let branch = format!("z9hG4bK{}", self.new_tag());
        let key = TransactionKey::client(&branch, request.method());
        let mut request = request;
        let via = format!(
            "SIP/2.0/{} {};branch={branch};rport",
            to.transport.via_token(),
            self.config.via_sent_by
        );
        request.prepend_header("Via", via);
        if request.header("max-forwards").is_none() {
            request = request.with_header("Max-Forwards", "70");
        }
        if !self.config.user_agent.is_empty() && request.header("user-agent").is_none() {
            request = request.with_header("User-Agent", self.config.user_agent.clone());
        }
        let bytes = request.to_bytes();
        self.transmits.push_back(Transmit {
            to,
            bytes: bytes.clone(),
        });
        let t1 = self.config.t1;
        let retransmit_at = (!to.transport.is_reliable()).then_some(now + t1);
        let end_at = now + 64 * t1;
        let invite = invite.then(|| {
            Box::new(InviteClient {
                request,
                ack: None,
                cancel: CancelState::NotAsked,
            })
        });
        self.clients.insert(
            key.clone(),
            ClientTransaction {
                state: ClientState::Trying,
                to,
                request: bytes,
                retransmit_at,
                interval: t1,
                end_at,
                invite,
            },
        );
        if let Some(at) = retransmit_at {
            self.timers.push(Reverse((at, key.clone())));
        }
        self.timers.push(Reverse((end_at, key.clone())));
        key
    }

    /// Cancels the INVITE client transaction `key` (RFC 3261 §9.1): a CANCEL with the
    /// INVITE's Request-URI, Call-ID, From, To, CSeq number, Route and top Via (the same
    /// branch), in a non-INVITE client transaction of its own. Before any provisional response
    /// it is held and sent with the first one (a final response makes it moot). Returns
    /// `false` when there is nothing left to cancel (no such transaction, or a final response
    /// already came).
    pub fn cancel(&mut self, now: Instant, key: &TransactionKey) -> bool {
        let Some(tx) = self.clients.get_mut(key) else {
            return false;
        };
        let state = tx.state;
        let Some(invite) = tx.invite.as_mut() else {
            return false;
        };
        match (state, invite.cancel) {
            (ClientState::Completed | ClientState::Accepted, _) => false,
            (_, CancelState::Pending | CancelState::Sent) => true,
            (ClientState::Trying, CancelState::NotAsked) => {
                invite.cancel = CancelState::Pending;
                true
            }
            (ClientState::Proceeding, CancelState::NotAsked) => {
                self.send_cancel(now, key);
                true
            }
        }
    }

    fn send_cancel(&mut self, now: Instant, key: &TransactionKey) {
        let Some(tx) = self.clients.get_mut(key) else {
            return;
        };
        let to = tx.to;
        let Some(invite) = tx.invite.as_mut() else {
            return;
        };
        invite.cancel = CancelState::Sent;
        let cancel = derived_request(&invite.request, Method::Cancel, None);
        let branch = key.branch().unwrap_or_default().to_owned();
        let cancel_key = TransactionKey::client(&branch, &Method::Cancel);
        let bytes = cancel.to_bytes();
        self.transmits.push_back(Transmit {
            to,
            bytes: bytes.clone(),
        });
        let t1 = self.config.t1;
        let retransmit_at = (!to.transport.is_reliable()).then_some(now + t1);
        let end_at = now + 64 * t1;
        self.clients.insert(
            cancel_key.clone(),
            ClientTransaction {
                state: ClientState::Trying,
                to,
                request: bytes,
                retransmit_at,
                interval: t1,
                end_at,
                invite: None,
            },
        );
        if let Some(at) = retransmit_at {
            self.timers.push(Reverse((at, cancel_key.clone())));
        }
        self.timers.push(Reverse((end_at, cancel_key)));
    }

    /// Sends the TU's ACK for a 2xx (RFC 3261 §13.2.2.4: a request of its own, with a new
    /// branch; no transaction). With the INVITE's `key` the ACK is also kept: a retransmission
    /// of that 2xx (same To tag) gets it again without reaching the TU.
    pub fn send_ack(
        &mut self,
        _now: Instant,
        invite_key: Option<&TransactionKey>,
        to: Peer,
        ack: Request,
    ) {
        let branch = format!("z9hG4bK{}", self.new_tag());
        let mut ack = ack;
        let via = format!(
            "SIP/2.0/{} {};branch={branch};rport",
            to.transport.via_token(),
            self.config.via_sent_by
        );
        ack.prepend_header("Via", via);
        if ack.header("max-forwards").is_none() {
            ack = ack.with_header("Max-Forwards", "70");
        }
        let bytes = ack.to_bytes();
        self.transmits.push_back(Transmit {
            to,
            bytes: bytes.clone(),
        });
        if let Some(tx) = invite_key.and_then(|key| self.clients.get_mut(key))
            && let Some(invite) = tx.invite.as_mut()
        {
            let tag = ack.to_tag().unwrap_or("").to_owned();
            invite.ack = Some((tag, bytes));
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.purge_stale_timers();
        self.events.pop_front()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.purge_stale_timers();
        self.transmits.pop_front()
    }

    /// The next instant `handle_timeout` has work to do; `None` when no transaction is waiting.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Drops wake-ups at the top of the heap whose transaction ended or moved its deadline, so
    /// that `poll_timeout` names a real deadline. Entries deeper down are dropped when they
    /// reach the top; each transaction leaves only a bounded number behind.
    fn purge_stale_timers(&mut self) {
        while let Some(Reverse((at, key))) = self.timers.peek() {
            let live = match (self.servers.get(key), self.clients.get(key)) {
                (Some(tx), _) => tx.end_at == *at || tx.retransmit_at == Some(*at),
                (None, Some(tx)) => tx.end_at == *at || tx.retransmit_at == Some(*at),
                (None, None) => false,
            };
            if live {
                break;
            }
            self.timers.pop();
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, key))) = self.timers.pop() else {
                break;
            };
            if self.servers.contains_key(&key) {
                self.server_timer(now, &key);
            } else if self.clients.contains_key(&key) {
                self.client_timer(now, &key);
            }
        }
        self.purge_stale_timers();
    }

    pub fn stats(&self) -> EndpointStats {
        EndpointStats {
            server_transactions: self.servers.len(),
            client_transactions: self.clients.len(),
            ..self.stats
        }
    }

    fn with_server_header(&self, response: Response) -> Response {
        if self.config.user_agent.is_empty() || response.header("server").is_some() {
            response
        } else {
            response.with_header("Server", self.config.user_agent.clone())
        }
    }

    /// Sends a response outside any transaction (a refusal), within the UDP size bound.
    fn send_response_bytes(
        &mut self,
        now: Instant,
        to: Peer,
        response: Response,
        request_len: usize,
    ) {
        let response = self.with_server_header(response);
        if let Some(bytes) = self.bounded(now, to, request_len, &response) {
            self.transmits.push_back(Transmit { to, bytes });
        }
    }

    /// The bytes of `response` to a request of `request_len` bytes as they may go to `to`:
    /// whole over a reliable transport; over UDP within `limits.max_udp_response_factor` times
    /// the request, else a bare 500, else nothing (RFC 3261 lets an unreliable response be
    /// lost; it must not be an amplifier).
    fn bounded(
        &mut self,
        now: Instant,
        to: Peer,
        request_len: usize,
        response: &Response,
    ) -> Option<Vec<u8>> {
        if to.transport.is_reliable() {
            return Some(response.to_bytes());
        }
        let (bytes, bounded) = bound_udp_response(&self.config.limits, request_len, response);
        match bounded {
            Bounded::Whole => {}
            Bounded::Trimmed => {
                self.stats.responses_trimmed += 1;
                self.note_refusal(
                    now,
                    to,
                    "a UDP response over the size bound was trimmed to 500",
                );
            }
            Bounded::Dropped => {
                self.stats.responses_withheld += 1;
                self.note_refusal(now, to, "a UDP response over the size bound was not sent");
            }
        }
        bytes
    }

    /// Logs a refusal by the caps at most once per [`REFUSAL_LOG_INTERVAL`], with how many went
    /// untold since the last line: a flood costs one line a minute, not one per packet.
    fn note_refusal(&mut self, now: Instant, peer: Peer, what: &'static str) {
        self.refusals_untold += 1;
        if self
            .refusal_logged_at
            .is_some_and(|at| now.saturating_duration_since(at) < REFUSAL_LOG_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            peer = %peer.addr,
            refusals = self.refusals_untold,
            "{what} (refusals by the SIP limits since the last such line; see the endpoint metrics)"
        );
        self.refusal_logged_at = Some(now);
        self.refusals_untold = 0;
    }

    fn handle_request(&mut self, now: Instant, from: Peer, mut request: Request, len: usize) {
        let Some(mut via) = request.top_via() else {
            // Message::parse guarantees a top Via; nothing to answer to without one.
            self.stats.malformed_dropped += 1;
            return;
        };
        stamp_via(&mut via, from);
        request.set_top_via(&via);
        let reply_to = reply_peer(from, &via);
        if let Err(why) = self.config.limits.check(&request) {
            // Refused statelessly: hostile input gets no transaction to hold, and each copy
            // of it one bounded answer. An ACK has no answer.
            self.stats.limit_rejected += 1;
            self.note_refusal(now, from, why.reason());
            if *request.method() != Method::Ack {
                let tag = self.new_tag();
                let response = request
                    .response_to_sender(why.status())
                    .with_reason(why.reason())
                    .with_to_tag(&tag);
                self.send_response_bytes(now, reply_to, response, len);
            }
            return;
        }
        let key = TransactionKey::server(&request, &via);
        match request.method() {
            Method::Ack => self.handle_ack(now, from, key, request),
            Method::Cancel => self.handle_cancel(now, reply_to, key, request, len),
            _ => {
                if self.absorb_retransmission(&key) {
                    return;
                }
                if self.servers.len() + self.clients.len() >= self.config.max_transactions {
                    self.stats.overload_rejected += 1;
                    let tag = self.new_tag();
                    let response = request
                        .response(503)
                        .with_to_tag(&tag)
                        .with_header("Retry-After", "5");
                    self.send_response_bytes(now, reply_to, response, len);
                    return;
                }
                let invite = *request.method() == Method::Invite;
                let limit = if invite {
                    self.config.invite_unanswered_limit
                } else {
                    64 * self.config.t1
                };
                let tx = ServerTransaction {
                    state: ServerState::Trying,
                    invite,
                    reply_to,
                    request_len: len,
                    call_id: request.call_id().to_owned(),
                    last_response: None,
                    retransmit_at: None,
                    interval: self.config.t1,
                    end_at: now + limit,
                    ack_id: None,
                    to_tag: None,
                };
                self.servers.insert(key.clone(), tx);
                self.timers.push(Reverse((now + limit, key.clone())));
                // RFC 3261 §8.2.2: the Request-URI scheme (§8.2.2.1) before Require (§8.2.2.3).
                if !supported_scheme(request.uri()) {
                    self.stats.unsupported_rejected += 1;
                    self.reject(now, &key, &request, Rejection::UnsupportedUriScheme);
                    return;
                }
                let unsupported = self.unsupported(&request);
                if !unsupported.is_empty() {
                    self.stats.unsupported_rejected += 1;
                    let response = request
                        .response(Rejection::UnsupportedExtension.status())
                        .with_header("Unsupported", unsupported.join(", "));
                    self.respond(now, &key, response);
                    return;
                }
                if invite {
                    // §17.2.1: 100 Trying at once, which stops the client's INVITE retransmissions.
                    self.respond(now, &key, request.response(100));
                }
                self.events.push_back(Event::Request { key, request, from });
            }
        }
    }

    /// Answers a request the endpoint refuses on its own, in its server transaction.
    fn reject(&mut self, now: Instant, key: &TransactionKey, request: &Request, why: Rejection) {
        tracing::debug!(%key, ?why, "request rejected by the endpoint");
        let response = request.response(why.status()).with_reason(why.reason());
        self.respond(now, key, response);
    }

    /// The option tags of `Require` we do not support.
    fn unsupported(&self, request: &Request) -> Vec<String> {
        request
            .header_values("require")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .filter(|t| {
                !self
                    .config
                    .supported_extensions
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(t))
            })
            .map(str::to_owned)
            .collect()
    }

    /// A request matching a live server transaction: resend its last response, if any.
    fn absorb_retransmission(&mut self, key: &TransactionKey) -> bool {
        let Some(tx) = self.servers.get(key) else {
            return false;
        };
        self.stats.retransmissions_absorbed += 1;
        if let Some(bytes) = &tx.last_response {
            self.transmits.push_back(Transmit {
                to: tx.reply_to,
                bytes: bytes.clone(),
            });
        }
        true
    }

    fn handle_ack(&mut self, now: Instant, from: Peer, key: TransactionKey, request: Request) {
        // An ACK for a non-2xx carries the INVITE's branch (§17.1.1.3).
        if let Some(tx) = self.servers.get_mut(&key) {
            match tx.state {
                ServerState::Completed => {
                    tx.state = ServerState::Confirmed;
                    tx.retransmit_at = None;
                    self.stats.retransmissions_absorbed += 1;
                    // Timer I: T4 on UDP to absorb ACK retransmissions, 0 on TCP.
                    if tx.reply_to.transport.is_reliable() {
                        self.remove_server(&key);
                    } else {
                        tx.end_at = now + self.config.t4;
                        self.timers.push(Reverse((tx.end_at, key)));
                    }
                    return;
                }
                ServerState::Confirmed => {
                    self.stats.retransmissions_absorbed += 1;
                    return;
                }
                _ => {}
            }
        }
        // An ACK for a 2xx is a transaction of its own, matched by dialog and CSeq.
        let ack_id: AckId = (
            request.call_id().to_owned(),
            request.cseq().0,
            request.to_tag().unwrap_or("").to_owned(),
        );
        if let Some(invite_key) = self.acks.get(&ack_id)
            && let Some(tx) = self.servers.get_mut(invite_key)
            && let ServerState::Accepted { acked } = tx.state
        {
            if acked {
                self.stats.retransmissions_absorbed += 1;
                return;
            }
            tx.state = ServerState::Accepted { acked: true };
            tx.retransmit_at = None;
        }
        self.events.push_back(Event::Ack { request, from });
    }

    fn handle_cancel(
        &mut self,
        now: Instant,
        reply_to: Peer,
        key: TransactionKey,
        request: Request,
        len: usize,
    ) {
        if self.absorb_retransmission(&key) {
            return;
        }
        let invite_key = key.with_method(Method::Invite);
        let pending = self.servers.get(&invite_key).map(|tx| !tx.has_final());
        if pending.is_none()
            && self.servers.len() + self.clients.len() >= self.config.max_transactions
        {
            self.stats.overload_rejected += 1;
            let tag = self.new_tag();
            self.send_response_bytes(now, reply_to, request.response(481).with_to_tag(&tag), len);
            return;
        }
        // §9.2: 200 when the CANCEL matches a transaction (even one already answered: the CANCEL
        // then has no effect), 481 when it matches none.
        let status = if pending.is_some() { 200 } else { 481 };
        let tx = ServerTransaction {
            state: ServerState::Trying,
            invite: false,
            reply_to,
            request_len: len,
            call_id: request.call_id().to_owned(),
            last_response: None,
            retransmit_at: None,
            interval: self.config.t1,
            end_at: now + 64 * self.config.t1,
            ack_id: None,
            to_tag: None,
        };
        self.servers.insert(key.clone(), tx);
        // §9.2: the To tag of the CANCEL's response SHOULD be the one of the INVITE's.
        let tag = match pending {
            Some(_) => self.transaction_tag(&invite_key),
            None => self.new_tag(),
        };
        self.respond(now, &key, request.response(status).with_to_tag(&tag));
        if pending == Some(true) {
            self.events.push_back(Event::Cancelled { key: invite_key });
        }
    }

    fn handle_response(&mut self, now: Instant, response: Response) {
        let key = response.top_via().and_then(|via| {
            let branch = via.branch()?.to_owned();
            let (_, method) = response.cseq()?;
            Some(TransactionKey::client(&branch, &method))
        });
        let Some(key) = key.filter(|k| self.clients.contains_key(k)) else {
            self.stats.stray_responses += 1;
            return;
        };
        let t2 = self.config.t2;
        let t4 = self.config.t4;
        if self.clients.get(&key).is_some_and(|tx| tx.invite.is_some()) {
            self.handle_invite_response(now, key, response);
            return;
        }
        let Some(tx) = self.clients.get_mut(&key) else {
            return;
        };
        if tx.state == ClientState::Completed {
            self.stats.retransmissions_absorbed += 1;
            return;
        }
        if response.is_provisional() {
            tx.state = ClientState::Proceeding;
            // Timer E continues at T2 once a provisional arrived (figure 6).
            if let Some(at) = tx.retransmit_at.as_mut() {
                tx.interval = t2;
                *at = now + t2;
                self.timers.push(Reverse((now + t2, key.clone())));
            }
        } else {
            tx.state = ClientState::Completed;
            tx.retransmit_at = None;
            // Timer K: T4 on UDP to absorb response retransmissions, 0 on TCP.
            if tx.to.transport.is_reliable() {
                self.clients.remove(&key);
            } else {
                tx.end_at = now + t4;
                self.timers.push(Reverse((tx.end_at, key.clone())));
            }
        }
        self.events.push_back(Event::Response {
            key,
            response: Some(response),
        });
    }

    /// A response to one of our INVITEs (RFC 3261 figure 5, RFC 6026 figure 4).
    fn handle_invite_response(&mut self, now: Instant, key: TransactionKey, response: Response) {
        let t1 = self.config.t1;
        let unanswered = self.config.invite_unanswered_limit;
        let Some(tx) = self.clients.get_mut(&key) else {
            return;
        };
        let Some(invite) = tx.invite.as_mut() else {
            return;
        };
        let status = response.status();
        match tx.state {
            ClientState::Completed => {
                // A retransmitted non-2xx final: our ACK was lost (§17.1.1.2).
                if status >= 300 {
                    let ack = derived_request(&invite.request, Method::Ack, Some(&response));
                    self.transmits.push_back(Transmit {
                        to: tx.to,
                        bytes: ack.to_bytes(),
                    });
                }
                self.stats.retransmissions_absorbed += 1;
                return;
            }
            ClientState::Accepted => {
                // A retransmitted 2xx gets the same ACK; another 2xx (a fork, another To tag)
                // and any other response go to the TU.
                if let Some((tag, bytes)) = &invite.ack
                    && (200..300).contains(&status)
                    && response.to_tag().unwrap_or("") == tag
                {
                    self.transmits.push_back(Transmit {
                        to: tx.to,
                        bytes: bytes.clone(),
                    });
                    self.stats.retransmissions_absorbed += 1;
                    return;
                }
                if !(200..300).contains(&status) {
                    self.stats.retransmissions_absorbed += 1;
                    return;
                }
            }
            ClientState::Trying | ClientState::Proceeding => {
                tx.retransmit_at = None;
                if response.is_provisional() {
                    if tx.state == ClientState::Trying {
                        // Timer B gives way: the callee may ring for as long as the caller
                        // waits, up to the endpoint's limit.
                        tx.end_at = now + unanswered;
                        self.timers.push(Reverse((tx.end_at, key.clone())));
                    }
                    tx.state = ClientState::Proceeding;
                    if invite.cancel == CancelState::Pending {
                        self.send_cancel(now, &key);
                    }
                } else if status < 300 {
                    tx.state = ClientState::Accepted;
                    tx.end_at = now + 64 * t1;
                    self.timers.push(Reverse((tx.end_at, key.clone())));
                } else {
                    let ack = derived_request(&invite.request, Method::Ack, Some(&response));
                    self.transmits.push_back(Transmit {
                        to: tx.to,
                        bytes: ack.to_bytes(),
                    });
                    tx.state = ClientState::Completed;
                    // Timer D: 32 s on UDP to absorb retransmitted finals, 0 on TCP.
                    if tx.to.transport.is_reliable() {
                        self.clients.remove(&key);
                    } else {
                        tx.end_at = now + Duration::from_secs(32).max(64 * t1);
                        self.timers.push(Reverse((tx.end_at, key.clone())));
                    }
                }
            }
        }
        self.events.push_back(Event::Response {
            key,
            response: Some(response),
        });
    }

    fn server_timer(&mut self, now: Instant, key: &TransactionKey) {
        let t2 = self.config.t2;
        let Some(tx) = self.servers.get_mut(key) else {
            return;
        };
        if tx.end_at <= now {
            match tx.state {
                ServerState::Completed if tx.invite => {
                    self.stats.ack_timeouts += 1;
                    self.events.push_back(Event::AckTimeout {
                        key: key.clone(),
                        call_id: tx.call_id.clone(),
                    });
                }
                ServerState::Accepted { acked: false } => {
                    self.stats.ack_timeouts += 1;
                    self.events.push_back(Event::AckTimeout {
                        key: key.clone(),
                        call_id: tx.call_id.clone(),
                    });
                }
                ServerState::Trying | ServerState::Proceeding => {
                    tracing::warn!(%key, call_id = %tx.call_id, "request never answered; transaction dropped");
                    self.stats.unanswered_expired += 1;
                }
                _ => {}
            }
            self.remove_server(key);
            return;
        }
        if let Some(at) = tx.retransmit_at
            && at <= now
        {
            if let Some(bytes) = &tx.last_response {
                self.transmits.push_back(Transmit {
                    to: tx.reply_to,
                    bytes: bytes.clone(),
                });
                self.stats.retransmissions_sent += 1;
            }
            // T1, 2T1, 4T1 ... capped at T2 (Timer G, and §13.3.1.4 for a 2xx).
            tx.interval = (tx.interval * 2).min(t2);
            let next = at + tx.interval;
            tx.retransmit_at = Some(next);
            self.timers.push(Reverse((next, key.clone())));
        }
    }

    fn client_timer(&mut self, now: Instant, key: &TransactionKey) {
        let t2 = self.config.t2;
        let Some(tx) = self.clients.get_mut(key) else {
            return;
        };
        if tx.end_at <= now {
            if matches!(tx.state, ClientState::Trying | ClientState::Proceeding) {
                // Timer F (B for an INVITE): no final response.
                self.events.push_back(Event::Response {
                    key: key.clone(),
                    response: None,
                });
            }
            self.clients.remove(key);
            return;
        }
        if let Some(at) = tx.retransmit_at
            && at <= now
        {
            self.transmits.push_back(Transmit {
                to: tx.to,
                bytes: tx.request.clone(),
            });
            self.stats.retransmissions_sent += 1;
            tx.interval = if tx.invite.is_some() {
                // Timer A doubles without the T2 cap (§17.1.1.2).
                tx.interval * 2
            } else if tx.state == ClientState::Proceeding {
                t2
            } else {
                (tx.interval * 2).min(t2)
            };
            let next = at + tx.interval;
            tx.retransmit_at = Some(next);
            self.timers.push(Reverse((next, key.clone())));
        }
    }

    fn remove_server(&mut self, key: &TransactionKey) {
        if let Some(tx) = self.servers.remove(key)
            && let Some(ack_id) = tx.ack_id
        {
            self.acks.remove(&ack_id);
        }
    }
}

/// The ACK for a non-2xx (§17.1.1.3) or the CANCEL (§9.1) of an INVITE we sent: its
/// Request-URI, top Via only, From, Call-ID, Route and CSeq number; To from the response (its
/// tag) for the ACK, the INVITE's for the CANCEL.
fn derived_request(invite: &Request, method: Method, response: Option<&Response>) -> Request {
    let mut request = Request::new(method.clone(), invite.uri());
    if let Some(via) = invite.header_values("via").next() {
        let top = crate::header::split_list(via)
            .first()
            .map_or(via, |top| *top)
            .to_owned();
        request = request.with_header("Via", top);
    }
    let to = response
        .and_then(|r| r.header("to"))
        .unwrap_or(invite.to_header())
        .to_owned();
    request = request
        .with_header("Max-Forwards", "70")
        .with_header("From", invite.from_header())
        .with_header("To", to)
        .with_header("Call-ID", invite.call_id())
        .with_header("CSeq", format!("{} {method}", invite.cseq().0));
    for route in invite.header_values("route") {
        request = request.with_header("Route", route);
    }
    request
}

/// Whether we understand the Request-URI's scheme: `sip`, `sips` (RFC 3261) or `tel` (RFC 3966),
/// compared case-insensitively (RFC 3986 §3.1). The parser guarantees a `:`.
fn supported_scheme(uri: &str) -> bool {
    let scheme = uri.split_once(':').map_or(uri, |(scheme, _)| scheme);
    ["sip", "sips", "tel"]
        .iter()
        .any(|known| scheme.eq_ignore_ascii_case(known))
}

/// Whether a client transaction sending to `ours` is hit by a transport error reported for
/// `failed`: the same transport and remote address, or the same stream connection.
fn same_destination(ours: &Peer, failed: &Peer) -> bool {
    ours.transport == failed.transport
        && (ours.addr == failed.addr
            || ours.connection.is_some() && ours.connection == failed.connection)
}

/// RFC 3261 §18.2.1 and RFC 3581: record where the request really came from in its top Via.
fn stamp_via(via: &mut Via, from: Peer) {
    let source = from.addr.ip();
    let wants_rport = via.param("rport").is_some();
    if wants_rport {
        via.set_param("rport", Some(from.addr.port().to_string()));
    }
    let host = via.host.trim_start_matches('[').trim_end_matches(']');
    let same_host = host.parse::<IpAddr>().is_ok_and(|ip| ip == source);
    if wants_rport || !same_host {
        via.set_param("received", Some(source.to_string()));
    }
}

/// RFC 3261 §18.2.2: a stream transport (TCP, TLS) answers on the request's connection, and if
/// that is gone the driver connects to the source IP at the Via port (default 5060, 5061 for
/// TLS) over the same transport, which is the `addr` returned; UDP answers the source IP (the
/// `received` address), at the source port with `rport`, else at the Via port. `maddr`
/// (multicast) is ignored: a recording server only answers unicast peers.
fn reply_peer(from: Peer, via: &Via) -> Peer {
    let via_port = via.port.unwrap_or(from.transport.default_port());
    match from.transport {
        TransportKind::Udp => {
            let port = match via.param("rport") {
                Some(_) => from.addr.port(),
                None => via_port,
            };
            Peer::udp(std::net::SocketAddr::new(from.addr.ip(), port))
        }
        TransportKind::Tcp | TransportKind::Tls => Peer {
            transport: from.transport,
            addr: std::net::SocketAddr::new(from.addr.ip(), via_port),
            connection: from.connection,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::ConnectionId;
    use std::net::SocketAddr;

    const SRC: &str = "192.0.2.10:5062";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn request(method: &str, branch: &str, via_tail: &str, extra: &str) -> Vec<u8> {
        format!(
            "{method} sip:srs@192.0.2.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.10:5062;branch={branch}{via_tail}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:src@192.0.2.10>;tag=src-tag\r\n\
             To: <sip:srs@192.0.2.1>{extra}\r\n\
             Call-ID: call-1@192.0.2.10\r\n\
             CSeq: 1 {method}\r\n\
             Contact: <sip:src@192.0.2.10:5062>\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn invite(branch: &str) -> Vec<u8> {
        request("INVITE", branch, ";rport", "")
    }

    fn ack_for_2xx(branch: &str) -> Vec<u8> {
        request("ACK", branch, ";rport", ";tag=srs-tag")
    }

    fn responses(ep: &mut Endpoint) -> Vec<(Peer, Response)> {
        std::iter::from_fn(|| ep.poll_transmit())
            .map(|t| match Message::parse(&t.bytes) {
                Ok(Message::Response(r)) => (t.to, r),
                other => panic!("expected a response, got {other:?}"),
            })
            .collect()
    }

    fn statuses(ep: &mut Endpoint) -> Vec<u16> {
        responses(ep).iter().map(|(_, r)| r.status()).collect()
    }

    fn new_request(ep: &mut Endpoint) -> (TransactionKey, Request) {
        match ep.poll_event() {
            Some(Event::Request { key, request, .. }) => (key, request),
            other => panic!("expected a request event, got {other:?}"),
        }
    }

    /// Runs timers up to `until`, returning (instant, statuses sent then) for each wake-up.
    fn run_until(ep: &mut Endpoint, until: Instant) -> Vec<(Instant, Vec<u16>)> {
        let mut out = Vec::new();
        while let Some(at) = ep.poll_timeout().filter(|at| *at <= until) {
            ep.handle_timeout(at);
            let sent = statuses(ep);
            if !sent.is_empty() {
                out.push((at, sent));
            }
        }
        out
    }

    /// An INVITE answered 200 over UDP; returns the endpoint, t0 and the key.
    fn accepted_invite() -> (Endpoint, Instant, TransactionKey) {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        ep.handle_input(t0, Peer::udp(addr(SRC)), &invite("z9hG4bKinv1"));
        assert_eq!(statuses(&mut ep), [100]);
        let (key, req) = new_request(&mut ep);
        ep.respond(t0, &key, req.response(200).with_to_tag("srs-tag"));
        assert_eq!(statuses(&mut ep), [200]);
        (ep, t0, key)
    }

    #[test]
    fn invite_gets_100_trying_at_once_and_reaches_the_tu() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        ep.handle_input(t0, Peer::udp(addr(SRC)), &invite("z9hG4bKa"));
        let sent = responses(&mut ep);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1.status(), 100);
        assert_eq!(sent[0].1.to_tag(), None);
        assert_eq!(sent[0].1.header("server"), Some("callvault"));
        let (key, req) = new_request(&mut ep);
        assert_eq!(key.method(), &Method::Invite);
        assert_eq!(req.call_id(), "call-1@192.0.2.10");
        assert!(ep.poll_event().is_none());
    }

    #[test]
    fn invite_retransmission_is_absorbed_and_gets_the_last_response() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let from = Peer::udp(addr(SRC));
        ep.handle_input(t0, from, &invite("z9hG4bKa"));
        let (key, req) = new_request(&mut ep);
        statuses(&mut ep);
        ep.respond(t0, &key, req.response(180).with_to_tag("srs-tag"));
        assert_eq!(statuses(&mut ep), [180]);
        ep.handle_input(t0, from, &invite("z9hG4bKa"));
        assert_eq!(statuses(&mut ep), [180]);
        assert!(ep.poll_event().is_none());
        assert_eq!(ep.stats().retransmissions_absorbed, 1);
    }

    #[test]
    fn a_2xx_is_retransmitted_with_doubling_capped_at_t2_until_the_ack() {
        let (mut ep, t0, _key) = accepted_invite();
        let ms = Duration::from_millis;
        let sent = run_until(&mut ep, t0 + ms(12_000));
        let at: Vec<Duration> = sent.iter().map(|(at, _)| *at - t0).collect();
        assert_eq!(at, [ms(500), ms(1500), ms(3500), ms(7500), ms(11_500)]);
        assert!(sent.iter().all(|(_, s)| s == &[200]));
        // The ACK has its own branch; it matches by Call-ID, CSeq and To tag.
        ep.handle_input(
            t0 + ms(12_000),
            Peer::udp(addr(SRC)),
            &ack_for_2xx("z9hG4bKack1"),
        );
        match ep.poll_event() {
            Some(Event::Ack { request, .. }) => assert_eq!(request.method(), &Method::Ack),
            other => panic!("expected the ACK, got {other:?}"),
        }
        // No more retransmissions, and no AckTimeout when the transaction ends (Timer L).
        assert!(run_until(&mut ep, t0 + ms(60_000)).is_empty());
        assert!(ep.poll_event().is_none());
        assert_eq!(ep.stats().server_transactions, 0);
        // A duplicate ACK after that is a stray ACK for the TU's dialog to ignore.
        ep.handle_input(
            t0 + ms(61_000),
            Peer::udp(addr(SRC)),
            &ack_for_2xx("z9hG4bKack1"),
        );
        assert!(matches!(ep.poll_event(), Some(Event::Ack { .. })));
    }

    #[test]
    fn a_2xx_never_acked_ends_in_ack_timeout_at_timer_h() {
        let (mut ep, t0, key) = accepted_invite();
        let sent = run_until(&mut ep, t0 + Duration::from_secs(100));
        // 0.5, 1.5, 3.5, 7.5, then every 4 s until 32 s: 11.5 .. 31.5.
        assert_eq!(sent.len(), 4 + 6);
        match ep.poll_event() {
            Some(Event::AckTimeout { key: k, call_id }) => {
                assert_eq!(k, key);
                assert_eq!(call_id, "call-1@192.0.2.10");
            }
            other => panic!("expected AckTimeout, got {other:?}"),
        }
        assert_eq!(ep.stats().server_transactions, 0);
        assert!(ep.poll_event().is_none());
        assert_eq!(ep.poll_timeout(), None, "no wake-up left behind");
    }

    #[test]
    fn a_non_2xx_is_retransmitted_until_its_ack_which_is_absorbed() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let from = Peer::udp(addr(SRC));
        ep.handle_input(t0, from, &invite("z9hG4bKb"));
        let (key, req) = new_request(&mut ep);
        statuses(&mut ep);
        ep.respond(t0, &key, req.response(486).with_to_tag("srs-tag"));
        assert_eq!(statuses(&mut ep), [486]);
        assert_eq!(
            run_until(&mut ep, t0 + Duration::from_millis(1600)).len(),
            2
        );
        // The ACK for a non-2xx reuses the INVITE's branch.
        ep.handle_input(
            t0 + Duration::from_secs(2),
            from,
            &request("ACK", "z9hG4bKb", ";rport", ";tag=srs-tag"),
        );
        ep.handle_input(
            t0 + Duration::from_secs(3),
            from,
            &request("ACK", "z9hG4bKb", ";rport", ";tag=srs-tag"),
        );
        assert!(ep.poll_event().is_none());
        assert_eq!(ep.stats().retransmissions_absorbed, 2);
        assert!(run_until(&mut ep, t0 + Duration::from_secs(60)).is_empty());
        assert_eq!(ep.stats().server_transactions, 0);
        assert!(ep.poll_event().is_none());
    }

    #[test]
    fn a_non_2xx_never_acked_ends_in_ack_timeout() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        ep.handle_input(t0, Peer::udp(addr(SRC)), &invite("z9hG4bKb"));
        let (key, req) = new_request(&mut ep);
        ep.respond(t0, &key, req.response(488).with_to_tag("srs-tag"));
        run_until(&mut ep, t0 + Duration::from_secs(40));
        assert!(matches!(ep.poll_event(), Some(Event::AckTimeout { .. })));
    }

    #[test]
    fn a_non_invite_retransmission_is_answered_from_the_transaction_until_timer_j() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let from = Peer::udp(addr(SRC));
        let options = request("OPTIONS", "z9hG4bKopt", "", "");
        ep.handle_input(t0, from, &options);
        assert!(statuses(&mut ep).is_empty(), "no 100 for non-INVITE");
        // Retransmitted before the TU answered: absorbed, nothing to resend yet.
        ep.handle_input(t0, from, &options);
        assert!(statuses(&mut ep).is_empty());
        let (key, req) = new_request(&mut ep);
        ep.respond(t0, &key, req.response(200));
        assert_eq!(statuses(&mut ep), [200]);
        ep.handle_input(t0 + Duration::from_secs(5), from, &options);
        assert_eq!(statuses(&mut ep), [200]);
        assert!(ep.poll_event().is_none());
        run_until(&mut ep, t0 + Duration::from_secs(33));
        assert_eq!(ep.stats().server_transactions, 0);
        // After Timer J the same request is new again.
        ep.handle_input(t0 + Duration::from_secs(33), from, &options);
        assert!(matches!(ep.poll_event(), Some(Event::Request { .. })));
    }

    #[test]
    fn cancel_before_the_final_gets_200_and_the_tu_answers_487() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let from = Peer::udp(addr(SRC));
        ep.handle_input(t0, from, &invite("z9hG4bKc"));
        let (key, req) = new_request(&mut ep);
        statuses(&mut ep);
        ep.handle_input(t0, from, &request("CANCEL", "z9hG4bKc", ";rport", ""));
        let sent = responses(&mut ep);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1.status(), 200);
        assert_eq!(sent[0].1.cseq(), Some((1, Method::Cancel)));
        match ep.poll_event() {
            Some(Event::Cancelled { key: k }) => assert_eq!(k, key),
            other => panic!("expected Cancelled, got {other:?}"),
        }
        ep.respond(t0, &key, req.response(487).with_to_tag("srs-tag"));
        assert_eq!(statuses(&mut ep), [487]);
        ep.handle_input(
            t0,
            from,
            &request("ACK", "z9hG4bKc", ";rport", ";tag=srs-tag"),
        );
        assert!(ep.poll_event().is_none());
        assert!(run_until(&mut ep, t0 + Duration::from_secs(40)).is_empty());
        assert!(ep.poll_event().is_none());
    }

    #[test]
    fn cancel_after_the_final_is_200_without_effect_and_unmatched_is_481() {
        let (mut ep, t0, _) = accepted_invite();
        let from = Peer::udp(addr(SRC));
        ep.handle_input(t0, from, &request("CANCEL", "z9hG4bKinv1", ";rport", ""));
        assert_eq!(statuses(&mut ep), [200]);
        assert!(ep.poll_event().is_none());
        ep.handle_input(t0, from, &request("CANCEL", "z9hG4bKnothing", ";rport", ""));
        assert_eq!(statuses(&mut ep), [481]);
        assert!(ep.poll_event().is_none());
    }

    #[test]
    fn responses_are_routed_per_rport_received_and_sent_by() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        // rport: the source port, and `received`/`rport=` filled in.
        ep.handle_input(
            t0,
            Peer::udp(addr("198.51.100.7:40000")),
            &invite("z9hG4bKr1"),
        );
        let (to, resp) = responses(&mut ep).remove(0);
        new_request(&mut ep);
        assert_eq!(to, Peer::udp(addr("198.51.100.7:40000")));
        assert_eq!(
            resp.header("via"),
            Some("SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKr1;rport=40000;received=198.51.100.7")
        );
        // No rport, sent-by differs from the source: received=, port from the Via.
        ep.handle_input(
            t0,
            Peer::udp(addr("198.51.100.7:40000")),
            &request("OPTIONS", "z9hG4bKr2", "", ""),
        );
        let (key, req) = new_request(&mut ep);
        ep.respond(t0, &key, req.response(200));
        let (to, resp) = responses(&mut ep).remove(0);
        assert_eq!(to, Peer::udp(addr("198.51.100.7:5062")));
        assert_eq!(
            resp.header("via"),
            Some("SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKr2;received=198.51.100.7")
        );
        // No port in the Via: 5060. Sent-by equal to the source: no received.
        let bytes = String::from_utf8(request("OPTIONS", "z9hG4bKr3", "", ""))
            .unwrap()
            .replace("192.0.2.10:5062;branch", "192.0.2.10;branch");
        ep.handle_input(t0, Peer::udp(addr("192.0.2.10:7777")), bytes.as_bytes());
        let (key, req) = new_request(&mut ep);
        ep.respond(t0, &key, req.response(200));
        let (to, resp) = responses(&mut ep).remove(0);
        assert_eq!(to, Peer::udp(addr("192.0.2.10:5060")));
        assert_eq!(
            resp.header("via"),
            Some("SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKr3")
        );
    }

    #[test]
    fn over_tcp_responses_use_the_connection_and_are_not_retransmitted() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let from = Peer::tcp(addr("192.0.2.10:50123"), Some(ConnectionId(7)));
        let bytes = String::from_utf8(invite("z9hG4bKt"))
            .unwrap()
            .replace("UDP", "TCP");
        ep.handle_input(t0, from, bytes.as_bytes());
        let (key, req) = new_request(&mut ep);
        ep.respond(t0, &key, req.response(200).with_to_tag("srs-tag"));
        let sent = responses(&mut ep);
        assert_eq!(
            sent.iter().map(|(_, r)| r.status()).collect::<Vec<_>>(),
            [100, 200]
        );
        // The connection, else (if it closed) the source IP at the Via port.
        let expected = Peer::tcp(addr("192.0.2.10:5062"), Some(ConnectionId(7)));
        assert!(sent.iter().all(|(to, _)| *to == expected));
        assert!(run_until(&mut ep, t0 + Duration::from_secs(31)).is_empty());
        assert!(ep.poll_event().is_none());
        run_until(&mut ep, t0 + Duration::from_secs(33));
        assert!(matches!(ep.poll_event(), Some(Event::AckTimeout { .. })));
    }

    #[test]
    fn over_tls_responses_use_the_connection_else_the_via_port_default_5061() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let from = Peer::tls(addr("192.0.2.10:50123"), Some(ConnectionId(9)));
        // A Via without a port: its default on TLS is 5061, not 5060.
        let bytes = String::from_utf8(invite("z9hG4bKtls"))
            .unwrap()
            .replace("SIP/2.0/UDP 192.0.2.10:5062", "SIP/2.0/TLS 192.0.2.10");
        ep.handle_input(t0, from, bytes.as_bytes());
        let (key, req) = new_request(&mut ep);
        ep.respond(t0, &key, req.response(200).with_to_tag("srs-tag"));
        let sent = responses(&mut ep);
        assert_eq!(
            sent.iter().map(|(_, r)| r.status()).collect::<Vec<_>>(),
            [100, 200]
        );
        let expected = Peer::tls(addr("192.0.2.10:5061"), Some(ConnectionId(9)));
        assert!(sent.iter().all(|(to, _)| *to == expected), "{sent:?}");
        assert!(
            sent[1]
                .1
                .header("via")
                .is_some_and(|v| v.starts_with("SIP/2.0/TLS 192.0.2.10;")),
            "the Via is echoed as received"
        );
        // Reliable: the 2xx is not retransmitted while waiting for the ACK.
        assert!(run_until(&mut ep, t0 + Duration::from_secs(31)).is_empty());
    }

    #[test]
    fn a_request_sent_over_tls_says_tls_in_its_via_and_is_not_retransmitted() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let to = Peer::tls(addr(SRC), Some(ConnectionId(4)));
        let key = ep.send_request(t0, to, options_to_send());
        let sent = ep.poll_transmit().unwrap();
        assert_eq!(sent.to, to);
        let text = String::from_utf8(sent.bytes).unwrap();
        assert!(
            text.contains("\r\nVia: SIP/2.0/TLS callvault.invalid;branch=z9hG4bK"),
            "{text}"
        );
        ep.handle_timeout(t0 + Duration::from_secs(31));
        assert!(ep.poll_transmit().is_none(), "no retransmission over TLS");
        ep.handle_timeout(t0 + Duration::from_secs(32));
        assert!(matches!(
            ep.poll_event(),
            Some(Event::Response { key: k, response: None }) if k == key
        ));
    }

    #[test]
    fn stray_acks_reach_the_tu_and_stray_responses_are_dropped() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        ep.handle_input(t0, Peer::udp(addr(SRC)), &ack_for_2xx("z9hG4bKstray"));
        assert!(matches!(ep.poll_event(), Some(Event::Ack { .. })));
        let bcast = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/fixtures/rfc4475/bcast.sip"
        ))
        .unwrap();
        ep.handle_input(t0, Peer::udp(addr(SRC)), &bcast);
        assert!(ep.poll_event().is_none());
        assert!(ep.poll_transmit().is_none());
        assert_eq!(ep.stats().stray_responses, 1);
    }

    /// Every RFC 4475 fixture with its expected first line: `request ...`, `response ...` or
    /// `reject STATUS` (see fixtures/README.md).
    fn torture_messages() -> Vec<(String, Vec<u8>, String)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/fixtures/rfc4475");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "expected") {
                continue;
            }
            let expected = std::fs::read_to_string(&path).unwrap().trim().to_owned();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            out.push((
                name,
                std::fs::read(path.with_extension("sip")).unwrap(),
                expected,
            ));
        }
        out.sort();
        out
    }

    #[test]
    fn invalid_torture_messages_are_answered_with_their_status_and_reason() {
        let t0 = Instant::now();
        let mut answered = 0;
        for (name, bytes, expected) in torture_messages() {
            let Some(status) = expected.strip_prefix("reject ") else {
                continue;
            };
            let mut ep = Endpoint::new(EndpointConfig::default());
            ep.handle_input(t0, Peer::udp(addr(SRC)), &bytes);
            // The answer echoes what could be salvaged, which may be too little to parse (insuf).
            let Some(sent) = ep.poll_transmit() else {
                panic!("{name} was not answered");
            };
            assert!(ep.poll_transmit().is_none());
            let text = String::from_utf8(sent.bytes).unwrap();
            let status_line = text.lines().next().unwrap();
            assert!(
                status_line.starts_with(&format!("SIP/2.0 {status} ")),
                "{name}: {status_line}"
            );
            assert!(
                status_line.len() > "SIP/2.0 400 ".len() + 4,
                "{name} says what was wrong"
            );
            assert!(text.contains("\r\nVia: "), "{name}");
            assert!(ep.poll_event().is_none());
            assert_eq!(ep.stats().malformed_answered, 1);
            answered += 1;
        }
        assert_eq!(answered, 9);
    }

    /// A TU that answers what the recorder answers outside a dialog: 200 to OPTIONS, 415 to an
    /// INVITE (none of these offers is a recording), 405 to the rest; never with a To tag.
    fn answer_like_the_recorder(ep: &mut Endpoint, now: Instant) {
        while let Some(event) = ep.poll_event() {
            if let Event::Request { key, request, .. } = event {
                let status = match request.method() {
                    Method::Options => 200,
                    Method::Invite => 415,
                    _ => 405,
                };
                ep.respond(now, &key, request.response(status));
            }
        }
    }

    #[test]
    fn every_valid_torture_request_is_answered_with_a_to_tag_on_the_final() {
        let t0 = Instant::now();
        // One endpoint for all, as one server receives them: requests that share a branch
        // (cparam01 and cparam02, escnull and regescrt) must still each get their own answer.
        let mut ep = Endpoint::new(EndpointConfig::default());
        let mut requests = 0;
        for (name, bytes, expected) in torture_messages() {
            let Some(rest) = expected.strip_prefix("request ") else {
                continue;
            };
            requests += 1;
            let call_id = rest.split(' ').nth(1).unwrap();
            ep.handle_input(t0, Peer::udp(addr(SRC)), &bytes);
            answer_like_the_recorder(&mut ep, t0);
            let sent = responses(&mut ep);
            let finals: Vec<&Response> = sent
                .iter()
                .map(|(_, r)| r)
                .filter(|r| r.status() >= 200)
                .collect();
            assert_eq!(finals.len(), 1, "{name}: {:?}", statuses_of(&sent));
            let last = finals[0];
            assert_eq!(
                last.call_id(),
                call_id,
                "{name} got another request's answer"
            );
            assert!(
                last.to_tag().is_some(),
                "{name}: {} without a To tag",
                last.status()
            );
            let expected_status = match name.as_str() {
                "unkscm" | "novelsc" => 416,
                "bext01" => 420,
                _ => last.status(),
            };
            assert_eq!(last.status(), expected_status, "{name}");
        }
        assert!(requests >= 20, "only {requests} valid requests found");
    }

    fn statuses_of(sent: &[(Peer, Response)]) -> Vec<u16> {
        sent.iter().map(|(_, r)| r.status()).collect()
    }

    #[test]
    fn requests_that_share_a_branch_are_separate_transactions() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let from = Peer::udp(addr(SRC));
        let cparam = |n: u32| {
            format!(
                "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\r\n\
                 Max-Forwards: 70\r\nFrom: sip:watson@example.com;tag=8{n}\r\nTo: sip:watson@example.com\r\n\
                 Call-ID: cparam0{n}.70710@saturn.example.com\r\nCSeq: {n} REGISTER\r\nl: 0\r\n\r\n"
            )
            .into_bytes()
        };
        ep.handle_input(t0, from, &cparam(1));
        answer_like_the_recorder(&mut ep, t0);
        ep.handle_input(t0, from, &cparam(2));
        answer_like_the_recorder(&mut ep, t0);
        let sent = responses(&mut ep);
        let call_ids: Vec<&str> = sent.iter().map(|(_, r)| r.call_id()).collect();
        assert_eq!(
            call_ids,
            [
                "cparam01.70710@saturn.example.com",
                "cparam02.70710@saturn.example.com"
            ]
        );
        // A real retransmission of the second still matches its transaction.
        ep.handle_input(t0, from, &cparam(2));
        assert!(ep.poll_event().is_none());
        let again = responses(&mut ep);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].1.call_id(), "cparam02.70710@saturn.example.com");
        assert_eq!(again[0].1.to_tag(), sent[1].1.to_tag());
    }

    #[test]
    fn a_response_outside_a_dialog_gets_one_to_tag_per_transaction() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let from = Peer::udp(addr(SRC));
        let options = request("OPTIONS", "z9hG4bKo1", "", "");
        ep.handle_input(t0, from, &options);
        let (key, req) = new_request(&mut ep);
        ep.respond(t0, &key, req.response(200));
        let first = responses(&mut ep).remove(0).1;
        let tag = first
            .to_tag()
            .expect("the 200 to an OPTIONS carries a To tag")
            .to_owned();
        // The retransmission is answered with the same response, tag included.
        ep.handle_input(t0, from, &options);
        assert_eq!(responses(&mut ep)[0].1.to_tag(), Some(tag.as_str()));
        // Another transaction gets another tag.
        ep.handle_input(t0, from, &request("OPTIONS", "z9hG4bKo2", "", ""));
        let (key, req) = new_request(&mut ep);
        ep.respond(t0, &key, req.response(405));
        let other = responses(&mut ep).remove(0).1;
        assert!(other.to_tag().is_some_and(|t| t != tag));

        // An INVITE: 100 without a tag; a 180 and the final share the one the endpoint chose.
        ep.handle_input(t0, from, &invite("z9hG4bKi1"));
        let (key, req) = new_request(&mut ep);
        ep.respond(t0, &key, req.response(180));
        ep.respond(t0, &key, req.response(486));
        let sent = responses(&mut ep);
        assert_eq!(statuses_of(&sent), [100, 180, 486]);
        assert_eq!(sent[0].1.to_tag(), None);
        assert!(sent[1].1.to_tag().is_some());
        assert_eq!(sent[1].1.to_tag(), sent[2].1.to_tag());
        // Timer G retransmits the 486 with that tag.
        let (_, resent) = responses_until(&mut ep, t0 + Duration::from_millis(600)).remove(0);
        assert_eq!(resent.to_tag(), sent[2].1.to_tag());

        // A tag the TU chose (its dialog's) is kept, and later responses follow it.
        ep.handle_input(t0, from, &invite("z9hG4bKi2"));
        let (key, req) = new_request(&mut ep);
        ep.respond(t0, &key, req.response(183).with_to_tag("dialog-tag"));
        ep.respond(t0, &key, req.response(200));
        let sent = responses(&mut ep);
        assert_eq!(statuses_of(&sent), [100, 183, 200]);
        assert_eq!(sent[1].1.to_tag(), Some("dialog-tag"));
        assert_eq!(sent[2].1.to_tag(), Some("dialog-tag"));
    }

    /// Runs timers up to `until`, returning every response sent meanwhile.
    fn responses_until(ep: &mut Endpoint, until: Instant) -> Vec<(Peer, Response)> {
        let mut out = Vec::new();
        while let Some(at) = ep.poll_timeout().filter(|at| *at <= until) {
            ep.handle_timeout(at);
            out.extend(responses(ep));
        }
        out
    }

    #[test]
    fn the_cancel_and_the_487_share_the_invites_tag() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let from = Peer::udp(addr(SRC));
        ep.handle_input(t0, from, &invite("z9hG4bKc2"));
        let (key, req) = new_request(&mut ep);
        statuses(&mut ep);
        ep.handle_input(t0, from, &request("CANCEL", "z9hG4bKc2", ";rport", ""));
        assert!(matches!(ep.poll_event(), Some(Event::Cancelled { .. })));
        ep.respond(t0, &key, req.response(487));
        let sent = responses(&mut ep);
        assert_eq!(statuses_of(&sent), [200, 487]);
        assert!(sent[0].1.to_tag().is_some());
        assert_eq!(sent[0].1.to_tag(), sent[1].1.to_tag());
    }

    #[test]
    fn an_unknown_request_uri_scheme_is_answered_416_before_the_tu() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let from = Peer::udp(addr(SRC));
        let with_uri = |uri: &str, branch: &str| {
            String::from_utf8(request("OPTIONS", branch, "", ""))
                .unwrap()
                .replace(
                    "OPTIONS sip:srs@192.0.2.1:5060 ",
                    &format!("OPTIONS {uri} "),
                )
                .into_bytes()
        };
        ep.handle_input(t0, from, &with_uri("http://example.com/", "z9hG4bKu1"));
        let sent = responses(&mut ep);
        assert_eq!(statuses_of(&sent), [416]);
        assert_eq!(sent[0].1.reason(), "Unsupported URI Scheme");
        assert!(sent[0].1.to_tag().is_some());
        assert!(ep.poll_event().is_none());
        assert_eq!(ep.stats().unsupported_rejected, 1);
        // sip, sips and tel in any case reach the TU.
        for (i, uri) in ["SIP:srs@192.0.2.1", "sips:srs@192.0.2.1", "tel:+15550100"]
            .into_iter()
            .enumerate()
        {
            ep.handle_input(t0, from, &with_uri(uri, &format!("z9hG4bKk{i}")));
            assert!(
                matches!(ep.poll_event(), Some(Event::Request { .. })),
                "{uri}"
            );
        }
    }

    #[test]
    fn a_transport_error_fails_the_client_transactions_to_that_peer_at_once() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let dead = Peer::tcp(addr("192.0.2.66:5060"), Some(ConnectionId(3)));
        let alive = Peer::udp(addr(SRC));
        let to_dead = ep.send_request(t0, dead, options_to_send());
        let to_alive = ep.send_request(t0, alive, options_to_send());
        while ep.poll_transmit().is_some() {}
        // The driver reports the connection (by its id: the transaction named it) 2 s later.
        let later = t0 + Duration::from_secs(2);
        ep.handle_transport_error(
            later,
            &Peer::tcp(addr("192.0.2.66:41000"), Some(ConnectionId(3))),
        );
        match ep.poll_event() {
            Some(Event::Response {
                key,
                response: None,
            }) => assert_eq!(key, to_dead),
            other => panic!("expected the failure, got {other:?}"),
        }
        assert!(ep.poll_event().is_none());
        assert_eq!(ep.stats().client_transactions, 1);
        assert_eq!(ep.stats().transport_errors, 1);
        // The other transaction goes on: retransmitted, then answered.
        let sent = responses_or_requests_until(&mut ep, later);
        assert!(sent > 0, "the UDP request is still retransmitted");
        // A failure reported by address alone (a connect that failed) hits the same way.
        let to_unreachable = ep.send_request(
            later,
            Peer::tcp(addr("192.0.2.77:5060"), None),
            options_to_send(),
        );
        ep.poll_transmit();
        ep.handle_transport_error(later, &Peer::tcp(addr("192.0.2.77:5060"), None));
        assert!(matches!(
            ep.poll_event(),
            Some(Event::Response { key, response: None }) if key == to_unreachable
        ));
        // Nothing more for the failed ones when their timers would have fired (Timer F).
        responses_or_requests_until(&mut ep, t0 + Duration::from_secs(40));
        match ep.poll_event() {
            Some(Event::Response {
                key,
                response: None,
            }) => assert_eq!(key, to_alive),
            other => panic!("only the UDP transaction times out, got {other:?}"),
        }
        assert!(ep.poll_event().is_none());
    }

    /// Runs timers up to `until`; the number of messages sent meanwhile.
    fn responses_or_requests_until(ep: &mut Endpoint, until: Instant) -> usize {
        let mut sent = 0;
        while let Some(at) = ep.poll_timeout().filter(|at| *at <= until) {
            ep.handle_timeout(at);
            while ep.poll_transmit().is_some() {
                sent += 1;
            }
        }
        sent
    }

    /// `request` with `field` added after the Call-ID line (or the Call-ID replaced).
    fn request_with(method: &str, branch: &str, call_id: &str, field: &str) -> Vec<u8> {
        let base = String::from_utf8(request(method, branch, ";rport", "")).unwrap();
        base.replace(
            "Call-ID: call-1@192.0.2.10\r\n",
            &format!("Call-ID: {call_id}\r\n{field}"),
        )
        .into_bytes()
    }

    #[test]
    fn requests_beyond_the_caps_are_refused_400_statelessly() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let limits = RequestLimits::default();
        let long_call_id = "c".repeat(limits.max_call_id_len + 1);
        let long_header = format!("X-Junk: {}\r\n", "j".repeat(limits.max_header_len + 1));
        let many_vias = "Via: SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKx\r\n".repeat(limits.max_vias);
        // A second From is enough: every echoed field counts, and it stays under the field cap.
        let long_from = format!("From: <sip:{}@x>\r\n", "f".repeat(limits.max_echoed_len));
        for (bytes, reason) in [
            (
                request_with("INVITE", "z9hG4bK1", &long_call_id, ""),
                "Call-ID Too Long",
            ),
            (
                request_with("INVITE", "z9hG4bK2", "ok@x", &long_header),
                "Header Field Too Long",
            ),
            (
                request_with("OPTIONS", "z9hG4bK3", "ok@y", &many_vias),
                "Too Many Via Headers",
            ),
            (
                request_with("OPTIONS", "z9hG4bK5", "ok@z", &long_from),
                "Via, From and To Too Long",
            ),
        ] {
            ep.handle_input(t0, Peer::udp(addr(SRC)), &bytes);
            let sent = responses(&mut ep);
            assert_eq!(sent.len(), 1, "one answer, no 100 Trying: {reason}");
            assert_eq!((sent[0].1.status(), sent[0].1.reason()), (400, reason));
        }
        // Just within the caps is a request like any other.
        let max_call_id = "c".repeat(limits.max_call_id_len);
        ep.handle_input(
            t0,
            Peer::udp(addr(SRC)),
            &request_with("OPTIONS", "z9hG4bK4", &max_call_id, ""),
        );
        let (_, ok) = new_request(&mut ep);
        assert_eq!(ok.call_id(), max_call_id);
        assert!(
            ep.poll_event().is_none(),
            "refused requests never reach the TU"
        );
        assert_eq!(ep.stats().limit_rejected, 4);
        assert_eq!(
            ep.stats().server_transactions,
            1,
            "only the accepted one holds state"
        );
        // Refused statelessly: nothing is retransmitted, however long we wait.
        assert_eq!(
            responses_or_requests_until(&mut ep, t0 + Duration::from_secs(64)),
            0
        );
    }

    #[test]
    fn a_udp_response_is_never_more_than_three_times_its_request() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let options = request("OPTIONS", "z9hG4bKsmall", ";rport", "");
        ep.handle_input(t0, Peer::udp(addr(SRC)), &options);
        let (key, req) = new_request(&mut ep);
        // A TU answer far larger than the request (say, a long capabilities body).
        let big = req
            .response(200)
            .with_body("text/plain", vec![b'x'; 4 * options.len()]);
        ep.respond(t0, &key, big.clone());
        let sent: Vec<Transmit> = std::iter::from_fn(|| ep.poll_transmit()).collect();
        assert_eq!(sent.len(), 1);
        assert!(sent[0].bytes.len() <= 3 * options.len());
        let Ok(Message::Response(trimmed)) = Message::parse(&sent[0].bytes) else {
            panic!("a response");
        };
        assert_eq!(
            (trimmed.status(), trimmed.reason()),
            (500, "Response Too Large")
        );
        assert!(trimmed.body().is_empty());
        assert_eq!(trimmed.call_id(), "call-1@192.0.2.10");
        assert_eq!(ep.stats().responses_trimmed, 1);

        // Over TCP the same answer goes whole: a connection cannot be spoofed.
        let mut ep = Endpoint::new(EndpointConfig::default());
        let over_tcp = String::from_utf8(options.clone())
            .unwrap()
            .replace("UDP", "TCP");
        ep.handle_input(t0, Peer::tcp(addr(SRC), None), over_tcp.as_bytes());
        let (key, _) = new_request(&mut ep);
        ep.respond(t0, &key, big);
        assert_eq!(statuses(&mut ep), [200]);
        assert_eq!(ep.stats().responses_trimmed, 0);
    }

    #[test]
    fn a_30_kb_invite_of_vias_draws_one_response_no_larger_than_itself() {
        // The amplifier that was: Vias are echoed by every response, and an unacknowledged
        // INVITE's final response is sent eleven times.
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let element = "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK".to_owned() + &"v".repeat(960);
        let field = format!("Via: {}\r\n", [element.as_str(); 7].join(", "));
        let invite = request_with("INVITE", "z9hG4bKamp", "amp@x", &field.repeat(4));
        assert!(invite.len() > 28_000);
        ep.handle_input(t0, Peer::udp(addr(SRC)), &invite);
        let mut sent: Vec<usize> = std::iter::from_fn(|| ep.poll_transmit())
            .map(|t| t.bytes.len())
            .collect();
        while let Some(at) = ep.poll_timeout() {
            ep.handle_timeout(at);
            sent.extend(std::iter::from_fn(|| ep.poll_transmit()).map(|t| t.bytes.len()));
        }
        assert_eq!(sent.len(), 1, "one 400, never retransmitted");
        assert!(
            sent[0] < 2_000,
            "the refusal echoes the top Via only: {} bytes",
            sent[0]
        );
        assert!(ep.poll_event().is_none());
    }

    #[test]
    fn an_unacknowledged_udp_invite_draws_bounded_responses_on_rfc_timers_only() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let invite = invite("z9hG4bKspoof");
        ep.handle_input(t0, Peer::udp(addr(SRC)), &invite);
        let (key, req) = new_request(&mut ep);
        ep.respond(t0, &key, req.response(486));
        let mut sizes: Vec<usize> = std::iter::from_fn(|| ep.poll_transmit())
            .map(|t| t.bytes.len())
            .collect();
        while let Some(at) = ep.poll_timeout() {
            ep.handle_timeout(at);
            sizes.extend(std::iter::from_fn(|| ep.poll_transmit()).map(|t| t.bytes.len()));
        }
        // 100 Trying, the 486, then Timer G retransmissions (T1 doubling to T2) until Timer H
        // at 64*T1: at 0.5, 1.5, 3.5, 7.5, 11.5 … 31.5 s, 10 of them: 12 messages in all.
        assert_eq!(sizes.len(), 12);
        assert!(sizes.iter().all(|&n| n <= 3 * invite.len()), "{sizes:?}");
    }

    #[test]
    fn oversize_and_garbage_are_counted() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig {
            max_message_size: 200,
            ..EndpointConfig::default()
        });
        ep.handle_input(t0, Peer::udp(addr(SRC)), &invite("z9hG4bKbig"));
        assert_eq!(statuses(&mut ep), [413]);
        ep.handle_input(t0, Peer::udp(addr(SRC)), &[0xff; 300]);
        ep.handle_input(t0, Peer::udp(addr(SRC)), b"hello world\r\n\r\n");
        ep.handle_input(t0, Peer::udp(addr(SRC)), b"\r\n\r\n");
        assert!(ep.poll_transmit().is_none());
        let stats = ep.stats();
        assert_eq!(
            (stats.oversize, stats.malformed_dropped, stats.keepalives),
            (2, 1, 1)
        );
    }

    #[test]
    fn a_required_extension_we_lack_is_answered_420_without_the_tu() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let bext01 = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/fixtures/rfc4475/bext01.sip"
        ))
        .unwrap();
        ep.handle_input(t0, Peer::udp(addr(SRC)), &bext01);
        let sent = responses(&mut ep);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1.status(), 420);
        assert!(sent[0].1.to_tag().is_some());
        assert_eq!(
            sent[0].1.header("unsupported"),
            Some("nothingSupportsThis, nothingSupportsThisEither")
        );
        assert!(ep.poll_event().is_none());
        // `Require: siprec` is ours: the INVITE reaches the TU.
        let siprec = String::from_utf8(invite("z9hG4bKs")).unwrap().replace(
            "Max-Forwards: 70",
            "Max-Forwards: 70\r\nRequire: siprec, 100rel",
        );
        ep.handle_input(t0, Peer::udp(addr(SRC)), siprec.as_bytes());
        assert_eq!(statuses(&mut ep), [100]);
        assert!(matches!(ep.poll_event(), Some(Event::Request { .. })));
    }

    #[test]
    fn a_full_endpoint_answers_503() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig {
            max_transactions: 1,
            ..EndpointConfig::default()
        });
        ep.handle_input(t0, Peer::udp(addr(SRC)), &invite("z9hG4bK1"));
        ep.handle_input(t0, Peer::udp(addr(SRC)), &invite("z9hG4bK2"));
        assert_eq!(statuses(&mut ep), [100, 503]);
        assert_eq!(ep.stats().overload_rejected, 1);
    }

    #[test]
    fn an_invite_the_tu_never_answers_is_forgotten() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        ep.handle_input(t0, Peer::udp(addr(SRC)), &invite("z9hG4bK1"));
        run_until(&mut ep, t0 + Duration::from_secs(181));
        assert_eq!(ep.stats().server_transactions, 0);
        assert_eq!(ep.stats().unanswered_expired, 1);
    }

    #[test]
    fn rfc2543_requests_match_without_a_magic_cookie() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let from = Peer::udp(addr(SRC));
        ep.handle_input(t0, from, &request("INVITE", "old-branch", "", ""));
        let (key, req) = new_request(&mut ep);
        ep.respond(t0, &key, req.response(404).with_to_tag("srs-tag"));
        statuses(&mut ep);
        ep.handle_input(t0, from, &request("INVITE", "old-branch", "", ""));
        assert_eq!(statuses(&mut ep), [404]);
        ep.handle_input(t0, from, &request("ACK", "old-branch", "", ";tag=srs-tag"));
        assert!(ep.poll_event().is_none());
    }

    fn options_to_send() -> Request {
        Request::new(Method::Options, "sip:src@192.0.2.10:5062")
            .with_header("From", "<sip:srs@192.0.2.1>;tag=x")
            .with_header("To", "<sip:src@192.0.2.10>")
            .with_header("Call-ID", "ping-1")
            .with_header("CSeq", "1 OPTIONS")
    }

    fn answer(sent: &Transmit, status: u16) -> Vec<u8> {
        let Ok(Message::Request(req)) = Message::parse(&sent.bytes) else {
            panic!("a request")
        };
        req.response(status).with_to_tag("remote").to_bytes()
    }

    #[test]
    fn a_client_transaction_retransmits_until_the_response() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let to = Peer::udp(addr(SRC));
        let key = ep.send_request(t0, to, options_to_send());
        let sent = ep.poll_transmit().unwrap();
        assert_eq!(sent.to, to);
        let text = String::from_utf8(sent.bytes.clone()).unwrap();
        assert!(text.starts_with("OPTIONS sip:src@192.0.2.10:5062 SIP/2.0\r\nVia: SIP/2.0/UDP callvault.invalid;branch=z9hG4bK"), "{text}");
        let mut retransmits = Vec::new();
        while let Some(at) = ep
            .poll_timeout()
            .filter(|at| *at <= t0 + Duration::from_secs(8))
        {
            ep.handle_timeout(at);
            while ep.poll_transmit().is_some() {
                retransmits.push(at - t0);
            }
        }
        let ms = Duration::from_millis;
        assert_eq!(retransmits, [ms(500), ms(1500), ms(3500), ms(7500)]);
        ep.handle_input(t0 + ms(8000), to, &answer(&sent, 100));
        assert!(matches!(
            ep.poll_event(),
            Some(Event::Response {
                response: Some(_),
                ..
            })
        ));
        ep.handle_input(t0 + ms(8100), to, &answer(&sent, 200));
        match ep.poll_event() {
            Some(Event::Response {
                key: k,
                response: Some(r),
            }) => {
                assert_eq!(k, key);
                assert_eq!(r.status(), 200);
            }
            other => panic!("expected the 200, got {other:?}"),
        }
        // A retransmitted final is absorbed (Timer K), then the transaction is gone.
        ep.handle_input(t0 + ms(8200), to, &answer(&sent, 200));
        assert!(ep.poll_event().is_none());
        run_until(&mut ep, t0 + Duration::from_secs(20));
        assert_eq!(ep.stats().client_transactions, 0);
        assert!(ep.poll_transmit().is_none());
    }

    #[test]
    fn a_client_transaction_without_a_response_times_out_at_timer_f() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let key = ep.send_request(t0, Peer::tcp(addr(SRC), None), options_to_send());
        ep.poll_transmit().unwrap();
        ep.handle_timeout(t0 + Duration::from_secs(31));
        assert!(ep.poll_transmit().is_none(), "no retransmission over TCP");
        ep.handle_timeout(t0 + Duration::from_secs(32));
        match ep.poll_event() {
            Some(Event::Response {
                key: k,
                response: None,
            }) => assert_eq!(k, key),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    /// A small deterministic generator, so a failure can be replayed.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    #[test]
    fn no_input_makes_the_endpoint_panic() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let from = Peer::udp(addr(SRC));
        let mut seeds: Vec<Vec<u8>> = vec![invite("z9hG4bKfuzz"), ack_for_2xx("z9hG4bKa")];
        for name in [
            "wsinv", "intmeth", "mpart01", "longreq", "badinv01", "unreason",
        ] {
            let path = format!(
                "{}/src/fixtures/rfc4475/{name}.sip",
                env!("CARGO_MANIFEST_DIR")
            );
            seeds.push(std::fs::read(path).unwrap());
        }
        let mut rng = Lcg(42);
        for seed in &seeds {
            for cut in 0..=seed.len() {
                ep.handle_input(t0, from, &seed[..cut]);
            }
            for _ in 0..2000 {
                let mut m = seed.clone();
                for _ in 0..1 + rng.next() % 4 {
                    let i = (rng.next() as usize) % m.len();
                    m[i] = match rng.next() % 4 {
                        0 => rng.next() as u8,
                        1 => b'\r',
                        2 => b';',
                        _ => b' ',
                    };
                }
                ep.handle_input(t0, from, &m);
            }
        }
        for len in 0..3000 {
            let bytes: Vec<u8> = (0..len % 700).map(|_| rng.next() as u8).collect();
            ep.handle_input(t0, from, &bytes);
        }
        while ep.poll_transmit().is_some() {}
        while ep.poll_event().is_some() {}
        run_until(&mut ep, t0 + Duration::from_secs(400));
        assert_eq!(ep.stats().server_transactions, 0);
    }
}
