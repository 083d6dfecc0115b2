//! Transaction identity (RFC 3261 §17.1.3, §17.2.3) and the per-transaction state the endpoint
//! keeps. The state machines themselves run in `endpoint`, which owns the timers.

use crate::message::{Method, Request};
use crate::peer::Peer;
use crate::via::{MAGIC_COOKIE, Via};
use std::fmt;
use std::time::{Duration, Instant};

/// Identifies a transaction: the top Via branch, sent-by and method for RFC 3261 senders; for
/// RFC 2543 senders (no `z9hG4bK` cookie) Call-ID, CSeq number, From tag, Request-URI and top
/// Via sent-by (§17.2.3, leaving out the To tag so the ACK for a non-2xx matches).
/// ACK is keyed as INVITE so that it finds the INVITE transaction.
///
/// RFC 3261 server keys also hold the Call-ID and CSeq number. §17.2.3 matches on branch,
/// sent-by and method alone, which makes two different requests that reuse a branch one
/// transaction: the second gets the first's response and never an answer of its own (RFC 4475
/// cparam01 and cparam02 share branch and sent-by, as do escnull and regescrt). A real
/// retransmission, its CANCEL and the ACK of a non-2xx all repeat Call-ID and CSeq number, so
/// they still match.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionKey(Inner);

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Inner {
    Server {
        branch: String,
        sent_by: String,
        call_id: String,
        cseq: u32,
        method: Method,
    },
    Rfc2543 {
        call_id: String,
        cseq: u32,
        from_tag: String,
        uri: String,
        sent_by: String,
        method: Method,
    },
    Client {
        branch: String,
        method: Method,
    },
}

fn key_method(method: &Method) -> Method {
    match method {
        Method::Ack => Method::Invite,
        other => other.clone(),
    }
}

impl TransactionKey {
    /// The key of the server transaction a received request belongs to.
    pub(crate) fn server(request: &Request, top_via: &Via) -> TransactionKey {
        let method = key_method(request.method());
        match top_via.branch() {
            Some(branch) if branch.starts_with(MAGIC_COOKIE) => TransactionKey(Inner::Server {
                branch: branch.to_owned(),
                sent_by: top_via.sent_by(),
                call_id: request.call_id().to_owned(),
                cseq: request.cseq().0,
                method,
            }),
            _ => TransactionKey(Inner::Rfc2543 {
                call_id: request.call_id().to_owned(),
                cseq: request.cseq().0,
                from_tag: request.from_tag().unwrap_or("").to_owned(),
                uri: request.uri().to_owned(),
                sent_by: top_via.sent_by(),
                method,
            }),
        }
    }

    pub(crate) fn client(branch: &str, method: &Method) -> TransactionKey {
        TransactionKey(Inner::Client {
            branch: branch.to_owned(),
            method: method.clone(),
        })
    }

    /// The same transaction identity for another method: a CANCEL's key as INVITE finds the
    /// transaction it cancels (§9.2).
    pub(crate) fn with_method(&self, method: Method) -> TransactionKey {
        let mut inner = self.0.clone();
        match &mut inner {
            Inner::Server { method: m, .. }
            | Inner::Rfc2543 { method: m, .. }
            | Inner::Client { method: m, .. } => *m = method,
        }
        TransactionKey(inner)
    }

    /// The method of the transaction (INVITE for an ACK).
    pub fn method(&self) -> &Method {
        match &self.0 {
            Inner::Server { method, .. }
            | Inner::Rfc2543 { method, .. }
            | Inner::Client { method, .. } => method,
        }
    }

    /// The branch, for logs (`None` for RFC 2543 keys).
    pub fn branch(&self) -> Option<&str> {
        match &self.0 {
            Inner::Server { branch, .. } | Inner::Client { branch, .. } => Some(branch),
            Inner::Rfc2543 { .. } => None,
        }
    }
}

impl fmt::Display for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Server {
                branch,
                sent_by,
                method,
                ..
            } => write!(f, "{method}/{branch}/{sent_by}"),
            Inner::Rfc2543 {
                call_id,
                cseq,
                method,
                ..
            } => write!(f, "{method}/{call_id}/{cseq}"),
            Inner::Client { branch, method } => write!(f, "{method}/{branch}/client"),
        }
    }
}

/// Where a server transaction stands (RFC 3261 figures 7 and 8, RFC 6026 figure 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ServerState {
    /// No response yet from the TU (non-INVITE "Trying"; INVITE has sent 100 and is Proceeding).
    Trying,
    Proceeding,
    /// A non-2xx final: INVITE waits for the ACK (Timer G/H); non-INVITE absorbs (Timer J).
    Completed,
    /// INVITE: the ACK for the non-2xx arrived; absorbing ACK retransmissions (Timer I).
    Confirmed,
    /// INVITE: a 2xx was sent (RFC 6026); retransmitted until `acked`, then kept until Timer L.
    Accepted {
        acked: bool,
    },
}

/// A server transaction: the request's reply address, the last response and its deadlines.
#[derive(Debug)]
pub(crate) struct ServerTransaction {
    pub state: ServerState,
    pub invite: bool,
    pub reply_to: Peer,
    /// The request's size on the wire: over UDP no response may be more than a small multiple.
    pub request_len: usize,
    pub call_id: String,
    pub last_response: Option<Vec<u8>>,
    /// The next retransmission of `last_response` (Timer G, or the 2xx timer) and its interval.
    pub retransmit_at: Option<Instant>,
    pub interval: Duration,
    /// When the transaction ends (Timer H, I, J, L, or the limit on an unanswered request).
    pub end_at: Instant,
    /// The (Call-ID, CSeq, To-tag) an ACK for our 2xx carries, indexed while Accepted.
    pub ack_id: Option<AckId>,
    /// The To tag of this transaction's responses (RFC 3261 §8.2.6.2): the TU's, or one the
    /// endpoint chose, fixed by the first response that carries one.
    pub to_tag: Option<String>,
}

impl ServerTransaction {
    pub(crate) fn has_final(&self) -> bool {
        !matches!(self.state, ServerState::Trying | ServerState::Proceeding)
    }
}

/// What an ACK for a 2xx shares with the INVITE: Call-ID, CSeq number and To tag (§17.1.1.3
/// gives it a new branch, so the branch cannot be used).
pub(crate) type AckId = (String, u32, String);

/// Where a client transaction stands: RFC 3261 figure 6 (non-INVITE), figure 5 with RFC 6026's
/// Accepted state (INVITE: `Trying` is "Calling").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientState {
    Trying,
    Proceeding,
    Completed,
    /// INVITE only: a 2xx arrived; kept for Timer M so that its retransmissions get our ACK
    /// again rather than reach the TU as new answers.
    Accepted,
}

/// What an INVITE client transaction keeps beyond a non-INVITE one: the request (the ACK for a
/// non-2xx and the CANCEL are built from it, §17.1.1.3 and §9.1), the TU's ACK for the 2xx
/// (resent on each retransmission of that 2xx) and whether the TU asked to cancel.
#[derive(Debug)]
pub(crate) struct InviteClient {
    pub request: Request,
    /// The ACK for the 2xx as sent, and the To tag of the 2xx it acknowledges.
    pub ack: Option<(String, Vec<u8>)>,
    pub cancel: CancelState,
}

/// RFC 3261 §9.1: a CANCEL may only be sent once a provisional response arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CancelState {
    NotAsked,
    /// Asked while still Calling: sent with the first provisional, dropped with a final.
    Pending,
    Sent,
}

#[derive(Debug)]
pub(crate) struct ClientTransaction {
    pub state: ClientState,
    pub to: Peer,
    pub request: Vec<u8>,
    /// Timer E and its interval.
    pub retransmit_at: Option<Instant>,
    pub interval: Duration,
    /// Timer F while Trying/Proceeding, Timer K once Completed (INVITE: Timer B while
    /// Calling, the unanswered limit while Proceeding, Timer D once Completed, Timer M once
    /// Accepted).
    pub end_at: Instant,
    /// `Some` for an INVITE client transaction.
    pub invite: Option<Box<InviteClient>>,
}
