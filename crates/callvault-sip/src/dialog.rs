//! UAS dialogs (RFC 3261 §12): the state an INVITE answered 2xx creates, used to check the
//! remote side's in-dialog requests and to build our own (BYE). Sans-IO and clock-free.

use crate::header::{name_addr, split_list};
use crate::message::{Method, Request, Response};
use crate::peer::{Peer, TransportKind};
use crate::uri::{is_sips, uri_address};
use std::net::IpAddr;

/// Call-ID plus both tags, from our point of view.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

/// The dialog id a received in-dialog request names: its To tag is ours, its From tag theirs.
/// `None` when the request has no To tag (it is not in a dialog).
pub fn dialog_id_of_request(request: &Request) -> Option<DialogId> {
    Some(DialogId {
        call_id: request.call_id().to_owned(),
        local_tag: request.to_tag()?.to_owned(),
        remote_tag: request.from_tag().unwrap_or("").to_owned(),
    })
}

/// A dialog in which we are the UAS of the initial INVITE.
#[derive(Clone, Debug)]
pub struct Dialog {
    id: DialogId,
    local_uri: String,
    remote_uri: String,
    remote_target: String,
    /// Record-Route of the INVITE in order: for the UAS that is already the route set (§12.1.1).
    route_set: Vec<String>,
    local_contact: String,
    local_cseq: u32,
    remote_cseq: u32,
    /// The INVITE's top Via asked for `rport` (RFC 3581): the client listens where it sent from.
    remote_rport: bool,
}

impl Dialog {
    /// The dialog the TU creates when it answers `invite` with a 2xx carrying `local_tag` (To
    /// tag) and `local_contact` (a full Contact value, e.g. `<sip:srs@192.0.2.1:5060>`).
    pub fn new_uas(invite: &Request, local_tag: String, local_contact: String) -> Dialog {
        let remote_target = invite.contact_uri().unwrap_or_else(|| invite.from_uri());
        let route_set = invite
            .header_values("record-route")
            .flat_map(split_list)
            .map(str::to_owned)
            .collect();
        Dialog {
            id: DialogId {
                call_id: invite.call_id().to_owned(),
                local_tag,
                remote_tag: invite.from_tag().unwrap_or("").to_owned(),
            },
            local_uri: invite.to_uri(),
            remote_uri: invite.from_uri(),
            remote_target,
            route_set,
            local_contact,
            // §12.1.1: the UAS's local sequence number starts empty; ours starts at 1.
            local_cseq: 0,
            remote_cseq: invite.cseq().0,
            remote_rport: invite
                .top_via()
                .is_some_and(|via| via.param("rport").is_some()),
        }
    }

    /// The dialog our INVITE `invite` (as we built it, before the endpoint added its Via)
    /// creates with the 2xx `response` (RFC 3261 §12.1.2): the remote target is the 2xx's
    /// Contact, the route set its Record-Route reversed, our CSeq the INVITE's.
    pub fn new_uac(invite: &Request, response: &Response, local_contact: String) -> Dialog {
        let remote_target = response
            .header("contact")
            .and_then(|value| split_list(value).into_iter().next())
            .map(|first| name_addr(first).uri.to_owned())
            .filter(|uri| !uri.is_empty())
            .unwrap_or_else(|| invite.uri().to_owned());
        let mut route_set: Vec<String> = response
            .header_values("record-route")
            .flat_map(split_list)
            .map(str::to_owned)
            .collect();
        route_set.reverse();
        Dialog {
            id: DialogId {
                call_id: invite.call_id().to_owned(),
                local_tag: invite.from_tag().unwrap_or("").to_owned(),
                remote_tag: response.to_tag().unwrap_or("").to_owned(),
            },
            local_uri: invite.from_uri(),
            remote_uri: invite.to_uri(),
            remote_target,
            route_set,
            local_contact,
            local_cseq: invite.cseq().0,
            // §12.1.2: the UAC's remote sequence number starts empty.
            remote_cseq: 0,
            remote_rport: false,
        }
    }

    /// The ACK for the 2xx to the INVITE (or re-INVITE) with CSeq `cseq` in this dialog
    /// (§13.2.2.4): the CSeq number of that INVITE, no new local CSeq.
    pub fn make_ack(&self, cseq: u32) -> Request {
        let mut request = Request::new(Method::Ack, self.remote_target.clone())
            .with_header(
                "From",
                format!("<{}>;tag={}", self.local_uri, self.id.local_tag),
            )
            .with_header(
                "To",
                format!("<{}>;tag={}", self.remote_uri, self.id.remote_tag),
            )
            .with_header("Call-ID", self.id.call_id.clone())
            .with_header("CSeq", format!("{cseq} ACK"));
        for route in &self.route_set {
            request = request.with_header("Route", route.clone());
        }
        request
    }

    /// A 2xx to our re-INVITE/UPDATE may move the remote target (§12.2.1.2).
    pub fn update_remote_target(&mut self, response: &Response) {
        if let Some(uri) = response
            .header("contact")
            .and_then(|value| split_list(value).into_iter().next())
            .map(|first| name_addr(first).uri.to_owned())
            .filter(|uri| !uri.is_empty())
        {
            self.remote_target = uri;
        }
    }

    pub fn id(&self) -> &DialogId {
        &self.id
    }
    /// Where our in-dialog requests go (the remote Contact, refreshed by re-INVITE/UPDATE).
    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }
    pub fn remote_cseq(&self) -> u32 {
        self.remote_cseq
    }
    pub fn local_cseq(&self) -> u32 {
        self.local_cseq
    }

    /// A response to a request of this dialog (the initial INVITE included) with our To tag,
    /// our Contact on 2xx to INVITE/UPDATE, and Record-Route copied on INVITE responses
    /// (§12.1.1), so the remote side builds the same route set.
    pub fn response(&self, request: &Request, status: u16) -> Response {
        let mut response = request.response(status).with_to_tag(&self.id.local_tag);
        let method = request.method();
        if *method == Method::Invite && status > 100 {
            for rr in request.header_values("record-route") {
                response = response.with_header("Record-Route", rr);
            }
        }
        if (200..300).contains(&status) && matches!(method, Method::Invite | Method::Update) {
            response = response.with_header("Contact", self.local_contact.clone());
        }
        response
    }

    /// Checks a request received in this dialog (§12.2.2): the CSeq must grow (ACK and CANCEL
    /// carry the INVITE's); a lower or equal one is answered `Err(500)`. On success, remembers
    /// the CSeq and, for re-INVITE/UPDATE with a Contact, the new remote target.
    pub fn check_request(&mut self, request: &Request) -> std::result::Result<(), u16> {
        if matches!(request.method(), Method::Ack | Method::Cancel) {
            return Ok(());
        }
        let cseq = request.cseq().0;
        if cseq <= self.remote_cseq {
            return Err(500);
        }
        self.remote_cseq = cseq;
        if matches!(request.method(), Method::Invite | Method::Update)
            && let Some(contact) = request.contact_uri()
        {
            self.remote_target = contact;
        }
        Ok(())
    }

    /// A request from us in this dialog (BYE, re-INVITE, UPDATE...): Request-URI = remote
    /// target, From/To from our side with both tags, the Call-ID, the next local CSeq, Route from
    /// the route set. The endpoint adds Via, Max-Forwards and User-Agent when it sends it.
    /// Loose routing only: a strict-routing first hop (no `;lr`) is not rewritten.
    pub fn make_request(&mut self, method: Method) -> Request {
        self.local_cseq += 1;
        let mut request = Request::new(method.clone(), self.remote_target.clone()).with_header(
            "From",
            format!("<{}>;tag={}", self.local_uri, self.id.local_tag),
        );
        let to = if self.id.remote_tag.is_empty() {
            format!("<{}>", self.remote_uri)
        } else {
            format!("<{}>;tag={}", self.remote_uri, self.id.remote_tag)
        };
        request = request
            .with_header("To", to)
            .with_header("Call-ID", self.id.call_id.clone())
            .with_header("CSeq", format!("{} {}", self.local_cseq, method));
        for route in &self.route_set {
            request = request.with_header("Route", route.clone());
        }
        if matches!(
            method,
            Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
        ) {
            request = request.with_header("Contact", self.local_contact.clone());
        }
        request
    }
}

/// Where to send our in-dialog requests (BYE) for a dialog whose INVITE came from
/// `received_from` (the `from` of its `Event::Request`; pass the `from` of the client's latest
/// refresh instead if its address changed). The next hop is the first Route of the
/// route set if there is one, else the remote target (Contact), as RFC 3261 §12.2.1.1 says;
/// this picks the transport address for it:
///
/// * TCP or TLS: the INVITE's connection (`received_from.connection`), on the same transport:
///   a dialog set up over TLS is never continued in clear. When that connection has closed,
///   the driver sends to the `addr` returned: the next hop's address when its URI names the
///   dialog's transport (`sips:` or `;transport=tls` for TLS, default port 5061;
///   `;transport=tcp` for TCP) and is usable (below), else the INVITE's source address.
/// * UDP when the INVITE's top Via had `rport`: `received_from`. The client asked for symmetric
///   routing (RFC 3581), and a recording client behind NAT is only reachable there.
/// * UDP otherwise: the next hop's URI when it names an IP address: its port (default 5060) and
///   `transport=` (`udp` or `tcp`; a new TCP connection for `tcp`). The source address instead
///   when that URI is unusable here: a host name (a sans-IO helper cannot resolve DNS), `sips:`
///   or TLS (a dialog that was not secured is not moved to TLS), another transport (SCTP, WS),
///   a malformed URI, an unspecified or multicast address, or a non-public address (RFC 1918,
///   CGNAT, loopback, link-local, ULA) while the INVITE came from a public one — the signature
///   of a client behind NAT.
pub fn peer_for_in_dialog_request(dialog: &Dialog, received_from: Peer) -> Peer {
    let reliable = received_from.transport.is_reliable();
    if !reliable && dialog.remote_rport {
        return received_from;
    }
    let next_hop = match dialog.route_set.first() {
        Some(route) => name_addr(route).uri,
        None => dialog.remote_target.as_str(),
    };
    let usable = uri_address(next_hop).filter(|(addr, _)| {
        let ip = addr.ip();
        let garbage = ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255; 4]);
        let behind_nat = !is_public(ip) && is_public(received_from.addr.ip());
        !garbage && !behind_nat
    });
    if reliable {
        let addr = match usable {
            Some((addr, transport)) if transport == received_from.transport => addr,
            _ => received_from.addr,
        };
        return Peer {
            addr,
            ..received_from
        };
    }
    match usable {
        Some((addr, TransportKind::Udp)) => Peer::udp(addr),
        Some((addr, TransportKind::Tcp)) => Peer::tcp(addr, None),
        _ => received_from,
    }
}

/// Where to send a request to `uri` outside a dialog (a route's target): its IP address and
/// port (default 5060, 5061 for `sips:`) over the transport it names (`;transport=tcp|tls`,
/// `sips:`), UDP otherwise. `None` for a host name (nothing here resolves DNS) or a URI that
/// names no usable address.
pub fn peer_for_uri(uri: &str) -> Option<Peer> {
    let (addr, transport) = uri_address(uri)?;
    Some(match transport {
        TransportKind::Udp => Peer::udp(addr),
        TransportKind::Tcp => Peer::tcp(addr, None),
        TransportKind::Tls => Peer::tls(addr, None),
    })
}

/// The URI of our Contact in the 2xx that creates a dialog with `invite`, received over
/// `transport`, where `host_port` is our address on that transport (e.g. `192.0.2.1:5061`).
///
/// RFC 3261 §12.1.1: when the INVITE's Request-URI, or its top Record-Route, or (without
/// Record-Route) its Contact is a `sips:` URI, ours is `sips:` too — on TLS, the only
/// transport that can honour it. Otherwise a stream transport is named with `;transport=`
/// (`tcp`, `tls`) so that the client's in-dialog requests come back over it (a bare `sip:`
/// URI means UDP).
pub fn local_contact_uri(
    invite: &Request,
    transport: TransportKind,
    user: &str,
    host_port: &str,
) -> String {
    let secure_dialog = is_sips(invite.uri())
        || match invite
            .header_values("record-route")
            .flat_map(split_list)
            .next()
        {
            Some(top) => is_sips(name_addr(top).uri),
            None => invite.contact_uri().is_some_and(|c| is_sips(&c)),
        };
    match transport {
        TransportKind::Tls if secure_dialog => format!("sips:{user}@{host_port}"),
        TransportKind::Udp => format!("sip:{user}@{host_port}"),
        _ => format!("sip:{user}@{host_port};transport={transport}"),
    }
}

/// Whether an address can be reached from the public Internet (roughly: not private, CGNAT,
/// loopback, link-local or unique-local).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let cgnat = a == 100 && (64..128).contains(&b);
            !(v4.is_private() || v4.is_loopback() || v4.is_link_local() || cgnat)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            !(v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::peer::ConnectionId;

    fn uri_of(value: &str) -> &str {
        name_addr(value).uri
    }

    fn invite() -> Request {
        let bytes = b"INVITE sip:srs@192.0.2.1 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n\
            Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
            Record-Route: <sip:p3.example.com;lr>\r\n\
            From: \"SBC\" <sip:src@example.com>;tag=remote1\r\n\
            To: <sip:srs@192.0.2.1>\r\n\
            Call-ID: dlg-1\r\n\
            CSeq: 10 INVITE\r\n\
            Contact: sip:src@10.0.0.1:5060;+sip.src\r\n\
            Content-Length: 0\r\n\r\n";
        match Message::parse(bytes).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("a request"),
        }
    }

    fn in_dialog(method: &str, cseq: u32, contact: &str) -> Request {
        let text = format!(
            "{method} sip:srs@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{cseq}\r\n\
             From: <sip:src@example.com>;tag=remote1\r\nTo: <sip:srs@192.0.2.1>;tag=local1\r\n\
             Call-ID: dlg-1\r\nCSeq: {cseq} {method}\r\n{contact}Content-Length: 0\r\n\r\n"
        );
        match Message::parse(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("a request"),
        }
    }

    fn dialog() -> Dialog {
        Dialog::new_uas(
            &invite(),
            "local1".into(),
            "<sip:srs@192.0.2.1:5060>".into(),
        )
    }

    #[test]
    fn in_dialog_requests_are_found_by_their_id() {
        let d = dialog();
        let bye = in_dialog("BYE", 11, "");
        assert_eq!(dialog_id_of_request(&bye).as_ref(), Some(d.id()));
        assert_eq!(dialog_id_of_request(&invite()), None);
    }

    #[test]
    fn cseq_must_grow_except_for_ack_and_cancel() {
        let mut d = dialog();
        assert_eq!(d.check_request(&in_dialog("INFO", 10, "")), Err(500));
        assert_eq!(d.check_request(&in_dialog("ACK", 10, "")), Ok(()));
        assert_eq!(d.check_request(&in_dialog("INFO", 11, "")), Ok(()));
        assert_eq!(d.check_request(&in_dialog("INFO", 11, "")), Err(500));
        assert_eq!(d.check_request(&in_dialog("INFO", 9, "")), Err(500));
        assert_eq!(d.remote_cseq(), 11);
    }

    #[test]
    fn reinvite_and_update_refresh_the_remote_target() {
        let mut d = dialog();
        assert_eq!(d.remote_target(), "sip:src@10.0.0.1:5060");
        d.check_request(&in_dialog("INFO", 11, "Contact: <sip:moved@10.0.0.9>\r\n"))
            .unwrap();
        assert_eq!(d.remote_target(), "sip:src@10.0.0.1:5060", "INFO does not");
        d.check_request(&in_dialog(
            "UPDATE",
            12,
            "Contact: <sip:moved@10.0.0.9>\r\n",
        ))
        .unwrap();
        assert_eq!(d.remote_target(), "sip:moved@10.0.0.9");
    }

    #[test]
    fn bye_from_us_swaps_from_and_to_and_follows_the_route_set() {
        let mut d = dialog();
        let bye = d.make_request(Method::Bye);
        assert_eq!(bye.method(), &Method::Bye);
        assert_eq!(bye.uri(), "sip:src@10.0.0.1:5060");
        assert_eq!(bye.from_header(), "<sip:srs@192.0.2.1>;tag=local1");
        assert_eq!(bye.to_header(), "<sip:src@example.com>;tag=remote1");
        assert_eq!(bye.call_id(), "dlg-1");
        assert_eq!(bye.cseq(), (1, &Method::Bye));
        let routes: Vec<&str> = bye.header_values("route").map(uri_of).collect();
        assert_eq!(
            routes,
            [
                "sip:p1.example.com;lr",
                "sip:p2.example.com;lr",
                "sip:p3.example.com;lr"
            ]
        );
        assert_eq!(bye.header("contact"), None);
        assert_eq!(d.make_request(Method::Bye).cseq().0, 2);
    }

    #[test]
    fn the_2xx_carries_tag_contact_and_record_route() {
        let d = dialog();
        let ok = d.response(&invite(), 200);
        assert_eq!(ok.to_tag(), Some("local1"));
        assert_eq!(ok.header("contact"), Some("<sip:srs@192.0.2.1:5060>"));
        assert_eq!(ok.header_values("record-route").count(), 2);
    }

    fn invite_with(via_params: &str, record_route: &str, contact: &str) -> Request {
        let text = format!(
            "INVITE sip:srs@192.0.2.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1{via_params}\r\n\
             {record_route}\
             From: <sip:src@example.com>;tag=remote1\r\nTo: <sip:srs@192.0.2.1>\r\n\
             Call-ID: dlg-2\r\nCSeq: 1 INVITE\r\nContact: {contact}\r\n\
             Content-Length: 0\r\n\r\n"
        );
        match Message::parse(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("a request"),
        }
    }

    fn next_hop(via_params: &str, record_route: &str, contact: &str, from: Peer) -> Peer {
        let d = Dialog::new_uas(
            &invite_with(via_params, record_route, contact),
            "l".into(),
            "<sip:srs@192.0.2.1>".into(),
        );
        peer_for_in_dialog_request(&d, from)
    }

    fn udp(addr: &str) -> Peer {
        Peer::udp(addr.parse().unwrap())
    }

    #[test]
    fn udp_without_rport_goes_to_the_contact() {
        let from = udp("198.51.100.7:5062");
        assert_eq!(
            next_hop("", "", "<sip:src@198.51.100.9:5070>", from),
            udp("198.51.100.9:5070")
        );
        assert_eq!(
            next_hop("", "", "sip:src@198.51.100.9", from),
            udp("198.51.100.9:5060")
        );
        assert_eq!(
            next_hop("", "", "<sip:src@198.51.100.9:5070;transport=TCP>", from),
            Peer::tcp("198.51.100.9:5070".parse().unwrap(), None)
        );
        assert_eq!(
            next_hop("", "", "<sip:src@[2001:db8::9]:5080;transport=udp>", from),
            udp("[2001:db8::9]:5080")
        );
        // Same private network: the private Contact is reachable.
        let lan = udp("10.0.0.1:5060");
        assert_eq!(
            next_hop("", "", "<sip:src@10.0.0.2:5062>", lan),
            udp("10.0.0.2:5062")
        );
    }

    #[test]
    fn udp_with_rport_goes_back_to_the_source() {
        let from = udp("203.0.113.4:41000");
        assert_eq!(
            next_hop(";rport", "", "<sip:src@198.51.100.9:5070>", from),
            from
        );
        assert_eq!(
            next_hop(
                ";rport=41000;received=203.0.113.4",
                "",
                "<sip:src@10.1.1.1>",
                from
            ),
            from
        );
    }

    #[test]
    fn unusable_contacts_fall_back_to_the_source() {
        let from = udp("203.0.113.4:5060");
        for contact in [
            "<sip:src@192.168.1.20:5060>",
            "<sip:src@100.64.0.1>",
            "<sip:src@127.0.0.1>",
            "<sip:src@[fd00::1]>",
            "<sip:src@0.0.0.0:5060>",
            "<sip:src@sbc.example.com:5060>",
            "<sips:src@198.51.100.9>",
            "<sip:src@198.51.100.9;transport=tls>",
            "<sip:src@198.51.100.9:99999>",
            "<sip:src@198.51.100.9:0>",
            "<sip:src@198.51.100.9:>",
            "<sip:src@[2001:db8::1>",
            "<tel:+15551234>",
            "garbage",
        ] {
            assert_eq!(next_hop("", "", contact, from), from, "{contact}");
        }
    }

    #[test]
    fn tcp_reuses_the_connection_and_the_route_set_wins() {
        let conn = Peer::tcp("198.51.100.7:40000".parse().unwrap(), Some(ConnectionId(7)));
        assert_eq!(next_hop("", "", "<sip:src@198.51.100.9:5070>", conn), conn);
        let from = udp("198.51.100.20:5060");
        assert_eq!(
            next_hop(
                "",
                "Record-Route: <sip:198.51.100.20:5080;lr>, <sip:198.51.100.30;lr>\r\n",
                "<sip:src@198.51.100.9:5070>",
                from
            ),
            udp("198.51.100.20:5080"),
            "the first Route is the next hop"
        );
    }

    fn tls(addr: &str, connection: u64) -> Peer {
        Peer::tls(addr.parse().unwrap(), Some(ConnectionId(connection)))
    }

    #[test]
    fn tls_keeps_the_connection_and_falls_back_to_the_contact_over_tls() {
        let conn = tls("198.51.100.7:40000", 3);
        // The connection first; if it has closed, the Contact's address, over TLS.
        for (contact, fallback) in [
            ("<sips:src@198.51.100.9>", "198.51.100.9:5061"),
            ("<sips:src@198.51.100.9:5071>;+sip.src", "198.51.100.9:5071"),
            (
                "<sip:src@198.51.100.9:5081;transport=TLS>",
                "198.51.100.9:5081",
            ),
            ("<sip:src@198.51.100.9;transport=tls>", "198.51.100.9:5061"),
        ] {
            assert_eq!(
                next_hop(";rport", "", contact, conn),
                tls(fallback, 3),
                "{contact}"
            );
        }
        // Never in clear, and never to what cannot be reached: the source address then.
        for contact in [
            "<sip:src@198.51.100.9:5060>",
            "<sip:src@198.51.100.9:5060;transport=tcp>",
            "<sips:src@sbc.example.com>",
            "<sips:src@192.168.1.20>",
            "<sips:src@0.0.0.0>",
            "garbage",
        ] {
            assert_eq!(next_hop("", "", contact, conn), conn, "{contact}");
        }
        // The first Route is the next hop, if it says TLS.
        assert_eq!(
            next_hop(
                "",
                "Record-Route: <sips:198.51.100.20:5091;lr>, <sip:198.51.100.30;lr>\r\n",
                "<sips:src@198.51.100.9>",
                conn
            ),
            tls("198.51.100.20:5091", 3)
        );
    }

    #[test]
    fn tcp_falls_back_to_a_tcp_contact() {
        let conn = Peer::tcp("198.51.100.7:40000".parse().unwrap(), Some(ConnectionId(8)));
        assert_eq!(
            next_hop("", "", "<sip:src@198.51.100.9:5070;transport=tcp>", conn),
            Peer::tcp("198.51.100.9:5070".parse().unwrap(), Some(ConnectionId(8)))
        );
        assert_eq!(
            next_hop("", "", "<sips:src@198.51.100.9>", conn),
            conn,
            "a TLS Contact is not reached over TCP"
        );
    }

    fn invite_for_contact(uri: &str, record_route: &str, contact: &str) -> Request {
        let text = format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.1;branch=z9hG4bK1\r\n\
             {record_route}From: <sip:src@example.com>;tag=r\r\nTo: <sip:srs@192.0.2.1>\r\n\
             Call-ID: c\r\nCSeq: 1 INVITE\r\nContact: {contact}\r\nContent-Length: 0\r\n\r\n"
        );
        match Message::parse(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("a request"),
        }
    }

    #[test]
    fn our_contact_names_the_transport_or_is_sips_when_the_dialog_is() {
        use TransportKind::{Tcp, Tls, Udp};
        let plain = invite_for_contact("sip:srs@192.0.2.1", "", "<sip:src@10.0.0.1>");
        let contact = |invite: &Request, transport| {
            local_contact_uri(invite, transport, "callvault", "192.0.2.1:5061")
        };
        assert_eq!(contact(&plain, Udp), "sip:callvault@192.0.2.1:5061");
        assert_eq!(
            contact(&plain, Tcp),
            "sip:callvault@192.0.2.1:5061;transport=tcp"
        );
        assert_eq!(
            contact(&plain, Tls),
            "sip:callvault@192.0.2.1:5061;transport=tls"
        );
        // §12.1.1: a sips Request-URI, top Record-Route, or (without Record-Route) Contact.
        for invite in [
            invite_for_contact("SIPS:srs@192.0.2.1", "", "<sip:src@10.0.0.1>"),
            invite_for_contact(
                "sip:srs@192.0.2.1",
                "Record-Route: <sips:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n",
                "<sip:src@10.0.0.1>",
            ),
            invite_for_contact("sip:srs@192.0.2.1", "", "<sips:src@10.0.0.1>"),
        ] {
            assert_eq!(contact(&invite, Tls), "sips:callvault@192.0.2.1:5061");
        }
        let proxied = invite_for_contact(
            "sip:srs@192.0.2.1",
            "Record-Route: <sip:p1.example.com;lr>\r\n",
            "<sips:src@10.0.0.1>",
        );
        assert_eq!(
            contact(&proxied, Tls),
            "sip:callvault@192.0.2.1:5061;transport=tls",
            "the Record-Route decides, not the Contact behind it"
        );
        // sips cannot be promised where the dialog is not on TLS.
        let sips = invite_for_contact("sips:srs@192.0.2.1", "", "<sips:src@10.0.0.1>");
        assert_eq!(
            contact(&sips, Tcp),
            "sip:callvault@192.0.2.1:5061;transport=tcp"
        );
    }
}
