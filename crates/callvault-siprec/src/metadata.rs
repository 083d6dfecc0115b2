//! RFC 7865 recording metadata, and every dialect of it in INTEROP.md, read into one model.
//!
//! Elements are matched by local name only, ignoring namespace and prefix, and names are
//! compared ignoring case, `-` and `_` (`dataMode`/`datamode`, `start-time`/`start_time`,
//! `session_id`/`sessionID`). Both id styles are read: RFC 7865 attributes (`session_id`,
//! `participant_id`, `stream_id`), Oracle's `id=`/`session=`, and the BroadWorks draft's `<id>`
//! children. Definitions may be flat (RFC 7865) or nested (`group` > `session` > `participant`,
//! the draft); a `session` or `stream` element inside a participant or stream is a reference,
//! not a definition. Anything inside `extensiondata` is vendor data: only correlation ids are
//! taken from it.

use roxmltree::{Document, Node, ParsingOptions};

use crate::body::Limits;
use crate::correlation::{CorrelationId, push_session_id, push_unique, ucid_from_user_to_user};
use crate::error::{Error, Result};

/// Which flavour of metadata the SRC sent; informational only — parsing does not depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Dialect {
    /// `urn:ietf:params:xml:ns:recording:1`.
    Rfc7865,
    /// `urn:ietf:params:xml:ns:recording` without `:1` (Oracle, AudioCodes, Ribbon).
    NoVersionNamespace,
    /// Root `recording_metadata` in `urn:ietf:params:xml:ns:siprec` (BroadWorks / Webex).
    BroadWorksDraft,
    /// No namespace at all.
    NoNamespace,
    /// A namespace we have not seen before; parsed like the others.
    OtherNamespace,
}

/// One metadata document (a complete snapshot or, with `datamode` partial, an update).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Metadata {
    pub dialect: Dialect,
    /// `complete` / `partial`, as sent.
    pub datamode: Option<String>,
    pub sessions: Vec<Session>,
    pub participants: Vec<Participant>,
    pub streams: Vec<Stream>,
    pub correlation_ids: Vec<CorrelationId>,
    /// What could not be reconciled; never fatal.
    pub warnings: Vec<String>,
}

/// A recorded communication session.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Session {
    pub id: String,
    /// `sipSessionID` values as sent (`<uuid>;remote=<uuid>`, or a Call-ID).
    pub sip_session_ids: Vec<String>,
    pub start_time: Option<String>,
}

/// A party to the recorded call.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Participant {
    pub id: String,
    /// As given: `sip:alice@example.com`, `+15551234567`, `1001`.
    pub aor: Option<String>,
    pub name: Option<String>,
    /// Ids of the streams this participant sends.
    pub send: Vec<String>,
    /// Ids of the streams this participant receives.
    pub recv: Vec<String>,
}

/// A media stream as the metadata describes it; tied to an m-line by its label.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Stream {
    pub id: String,
    pub label: Option<String>,
    pub session_id: Option<String>,
}

/// Element counts beyond this are refused before any allocation proportional to them.
const NODES_LIMIT: u32 = 100_000;

/// Real metadata nests fewer than ten elements deep. roxmltree has no depth limit of its own and
/// a document nested some thousands deep overflows the stack (found by tests/hostile_input.rs).
const MAX_DEPTH: usize = 64;

/// A linear scan for element nesting deeper than [`MAX_DEPTH`], before roxmltree sees the text.
/// `<` cannot occur unescaped in attribute values or text, so every `<` opens markup: a comment,
/// CDATA, a processing instruction, or a tag ending at the first `>` outside quotes.
fn too_deep(xml: &str) -> bool {
    let bytes = xml.as_bytes();
    let find = |from: usize, needle: &[u8]| {
        bytes
            .get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| from + i + needle.len())
    };
    let mut depth = 0usize;
    let mut position = 0;
    while let Some(offset) = bytes[position..].iter().position(|&b| b == b'<') {
        let open = position + offset;
        let rest = &bytes[open..];
        let after = if rest.starts_with(b"<!--") {
            find(open + 4, b"-->")
        } else if rest.starts_with(b"<![CDATA[") {
            find(open + 9, b"]]>")
        } else if rest.starts_with(b"<?") {
            find(open + 2, b"?>")
        } else {
            // `label='>'` is legal, so quotes are honoured.
            let mut quote = None;
            let close = rest.iter().position(|&b| {
                match quote {
                    Some(q) if b == q => quote = None,
                    Some(_) => {}
                    None if b == b'"' || b == b'\'' => quote = Some(b),
                    None => return b == b'>',
                }
                false
            });
            if let Some(close) = close {
                let self_closing = rest[close - 1] == b'/';
                match rest.get(1) {
                    Some(b'/') => depth = depth.saturating_sub(1),
                    Some(b'!') => {}
                    _ if self_closing => {}
                    _ => {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return true;
                        }
                    }
                }
            }
            close.map(|close| open + close + 1)
        };
        // Unterminated markup: roxmltree will refuse it without recursing.
        let Some(after) = after else {
            return false;
        };
        position = after;
    }
    false
}

/// Parse one metadata document. Fails only when it is not well-formed XML, is over the size
/// limit, or its root is not recording metadata; everything else becomes a warning.
pub fn parse_metadata(xml: &str, limits: &Limits) -> Result<Metadata> {
    if xml.len() > limits.max_metadata_bytes {
        return Err(Error::MetadataTooLarge {
            size: xml.len(),
            max: limits.max_metadata_bytes,
        });
    }
    let xml = xml.trim_start_matches('\u{feff}').trim_start();
    if too_deep(xml) {
        return Err(Error::BadMetadata {
            reason: format!("elements nested deeper than {MAX_DEPTH}"),
        });
    }
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: NODES_LIMIT,
    };
    let document =
        Document::parse_with_options(xml, options).map_err(|error| Error::BadMetadata {
            reason: error.to_string(),
        })?;
    let root = document.root_element();
    if !named(root, "recording") && !named(root, "recording_metadata") {
        return Err(Error::BadMetadata {
            reason: format!(
                "root element <{}> is not recording metadata",
                root.tag_name().name()
            ),
        });
    }
    let namespace = root.tag_name().namespace();
    let dialect = match namespace {
        _ if named(root, "recording_metadata") => Dialect::BroadWorksDraft,
        Some("urn:ietf:params:xml:ns:recording:1") => Dialect::Rfc7865,
        Some("urn:ietf:params:xml:ns:recording") => Dialect::NoVersionNamespace,
        Some(ns) if ns.contains("siprec") => Dialect::BroadWorksDraft,
        Some(_) => Dialect::OtherNamespace,
        None => Dialect::NoNamespace,
    };
    let mut reader = Reader {
        metadata: Metadata {
            dialect,
            datamode: root
                .children()
                .find(|child| named(*child, "datamode"))
                .map(text),
            sessions: Vec::new(),
            participants: Vec::new(),
            streams: Vec::new(),
            correlation_ids: Vec::new(),
            warnings: Vec::new(),
        },
    };
    for node in root.descendants().filter(Node::is_element) {
        reader.read(node);
    }
    reader.reconcile();
    Ok(reader.metadata)
}

struct Reader {
    metadata: Metadata,
}

impl Reader {
    fn read(&mut self, node: Node) {
        if in_extension(node) {
            self.read_extension(node);
            return;
        }
        // `<session>Sess-1</session>` inside a participant, stream or group is a reference.
        let is_reference =
            node.attributes().len() == 0 && !node.children().any(|child| child.is_element());
        let defines = !is_reference && node.parent_element().is_some_and(is_container);
        if named(node, "session") && defines {
            self.read_session(node);
        } else if named(node, "participant") && defines {
            self.read_participant(node);
        } else if named(node, "stream") && defines {
            self.read_stream(node);
        } else if named(node, "participantstreamassoc") {
            self.read_participant_stream_association(node);
        } else if named(node, "calldata") {
            self.read_call_data(node);
        }
    }

    fn read_session(&mut self, node: Node) {
        let id = id_of(node, &["session_id", "id"]).unwrap_or_default();
        let sip_session_ids: Vec<String> = node
            .children()
            .filter(|child| named(*child, "sipSessionID"))
            .map(text)
            .filter(|value| !value.is_empty())
            .collect();
        for value in &sip_session_ids {
            push_session_id(&mut self.metadata.correlation_ids, "sipSessionID", value);
        }
        let start_time = node
            .children()
            .find(|child| named(*child, "start-time"))
            .map(text)
            .filter(|value| !value.is_empty());
        match self.metadata.sessions.iter_mut().find(|s| s.id == id) {
            Some(session) => {
                for value in sip_session_ids {
                    if !session.sip_session_ids.contains(&value) {
                        session.sip_session_ids.push(value);
                    }
                }
                session.start_time = session.start_time.take().or(start_time);
            }
            None => self.metadata.sessions.push(Session {
                id,
                sip_session_ids,
                start_time,
            }),
        }
    }

    fn read_participant(&mut self, node: Node) {
        let id = id_of(node, &["participant_id", "id"]);
        if id.is_none() {
            self.metadata
                .warnings
                .push("participant without an id".into());
        }
        let id = id.unwrap_or_default();
        let name_id = node.children().find(|child| named(*child, "nameID"));
        let aor = name_id
            .and_then(|name_id| attribute(name_id, &["aor"]))
            .map(str::to_owned)
            .or_else(|| first_descendant(node, "aor").map(text))
            .or_else(|| attribute(node, &["aor"]).map(str::to_owned))
            .map(|aor| aor.trim().to_owned())
            .filter(|aor| !aor.is_empty());
        let name = name_id
            .and_then(|name_id| first_descendant(name_id, "name"))
            .or_else(|| first_descendant(node, "name"))
            .map(text)
            .filter(|name| !name.is_empty());
        let send = stream_refs(node, "send");
        let recv = stream_refs(node, "recv");
        let participant = self.participant(&id);
        participant.aor = participant.aor.take().or(aor);
        participant.name = participant.name.take().or(name);
        extend_unique(&mut participant.send, send);
        extend_unique(&mut participant.recv, recv);
    }

    fn read_participant_stream_association(&mut self, node: Node) {
        let Some(id) = id_of(node, &["participant_id", "participant", "id"]) else {
            self.metadata
                .warnings
                .push("participantstreamassoc without a participant id".into());
            return;
        };
        if !self.metadata.participants.iter().any(|p| p.id == id) {
            self.metadata.warnings.push(format!(
                "participantstreamassoc refers to participant {id:?} not defined (yet)"
            ));
        }
        let send = stream_refs(node, "send");
        let recv = stream_refs(node, "recv");
        let participant = self.participant(&id);
        extend_unique(&mut participant.send, send);
        extend_unique(&mut participant.recv, recv);
    }

    fn read_stream(&mut self, node: Node) {
        let id = id_of(node, &["stream_id", "id"]);
        if id.as_deref().is_none_or(str::is_empty) {
            self.metadata.warnings.push(format!(
                "stream without an id (label {:?})",
                child_text(node, "label").unwrap_or_default()
            ));
        }
        let id = id.unwrap_or_default();
        let label = child_text(node, "label")
            .or_else(|| attribute(node, &["label"]).map(str::to_owned))
            .filter(|label| !label.is_empty());
        let session_id = attribute(node, &["session_id", "session"])
            .map(str::to_owned)
            .or_else(|| child_text(node, "session"))
            .or_else(|| child_text(node, "session_ref"))
            .or_else(|| {
                node.ancestors()
                    .skip(1)
                    .find(|ancestor| named(*ancestor, "session"))
                    .and_then(|session| id_of(session, &["session_id", "id"]))
            })
            .filter(|id| !id.is_empty());
        match self.metadata.streams.iter_mut().find(|s| s.id == id) {
            Some(stream) => {
                stream.label = stream.label.take().or(label);
                stream.session_id = stream.session_id.take().or(session_id);
            }
            None => self.metadata.streams.push(Stream {
                id,
                label,
                session_id,
            }),
        }
    }

    /// Ribbon/Sonus `callData`: `callid`, `fromhdr`, `tohdr` of the recorded call.
    fn read_call_data(&mut self, node: Node) {
        for leaf in node
            .descendants()
            .skip(1)
            .filter(|n| n.is_element() && !n.children().any(|c| c.is_element()))
        {
            let kind = format!("callData.{}", leaf.tag_name().name().to_ascii_lowercase());
            push_unique(&mut self.metadata.correlation_ids, &kind, &text(leaf));
        }
    }

    /// Vendor extension data: correlation ids only (Oracle `apkt:ucid`, `apkt:callerOrig`;
    /// Ribbon `callData` may also sit here).
    fn read_extension(&mut self, node: Node) {
        if named(node, "calldata") {
            self.read_call_data(node);
        } else if named(node, "ucid") {
            // Oracle copies the User-to-User value (`00FA08…;encoding=hex`); reduce it to the
            // UCID itself, as from the header, so both are searchable by one value.
            let value = text(node);
            let value = ucid_from_user_to_user(&value).unwrap_or(value);
            push_unique(&mut self.metadata.correlation_ids, "ucid", &value);
        } else if named(node, "callerOrig") {
            push_unique(
                &mut self.metadata.correlation_ids,
                "callerOrig",
                &text(node),
            );
        }
    }

    fn participant(&mut self, id: &str) -> &mut Participant {
        let participants = &mut self.metadata.participants;
        let index = match participants.iter().position(|p| p.id == id) {
            Some(index) => index,
            None => {
                participants.push(Participant {
                    id: id.to_owned(),
                    aor: None,
                    name: None,
                    send: Vec::new(),
                    recv: Vec::new(),
                });
                participants.len() - 1
            }
        };
        &mut participants[index]
    }

    /// Cross-references that do not resolve; none of them stops the recording.
    fn reconcile(&mut self) {
        let metadata = &mut self.metadata;
        for participant in &metadata.participants {
            if participant.id.is_empty() {
                continue;
            }
            for stream_id in participant.send.iter().chain(&participant.recv) {
                if !metadata.streams.iter().any(|s| &s.id == stream_id) {
                    metadata.warnings.push(format!(
                        "participant {:?} refers to stream {stream_id:?} not described",
                        participant.id
                    ));
                }
            }
        }
        for stream in &metadata.streams {
            if let Some(session_id) = &stream.session_id
                && !metadata.sessions.iter().any(|s| &s.id == session_id)
            {
                metadata.warnings.push(format!(
                    "stream {:?} refers to session {session_id:?} not described",
                    stream.id
                ));
            }
        }
    }
}

/// Elements whose `session`/`participant`/`stream` children are definitions.
fn is_container(node: Node) -> bool {
    node.parent_element().is_none()
        || named(node, "recording")
        || named(node, "group")
        || named(node, "session")
}

fn in_extension(node: Node) -> bool {
    node.ancestors()
        .any(|ancestor| named(ancestor, "extensiondata"))
}

/// Local-name comparison ignoring case, `-` and `_`.
fn names_match(actual: &str, wanted: &str) -> bool {
    let significant = |s: &str| {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    significant(actual) == significant(wanted)
}

fn named(node: Node, wanted: &str) -> bool {
    node.is_element() && names_match(node.tag_name().name(), wanted)
}

fn attribute<'a>(node: Node<'a, '_>, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|wanted| {
        node.attributes()
            .find(|attribute| names_match(attribute.name(), wanted))
            .map(|attribute| attribute.value().trim())
    })
}

/// All text below a node, trimmed.
fn text(node: Node) -> String {
    let mut out = String::new();
    for piece in node.descendants().filter(Node::is_text) {
        out.push_str(piece.text().unwrap_or_default());
    }
    out.trim().to_owned()
}

fn child_text(node: Node, name: &str) -> Option<String> {
    node.children().find(|child| named(*child, name)).map(text)
}

fn first_descendant<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.descendants()
        .skip(1)
        .find(|n| named(*n, name) && !n.ancestors().any(|a| named(a, "extensiondata")))
}

/// An id from the first attribute present, else from an `<id>` child (BroadWorks draft).
/// `Some("")` for an id that is present but empty (Avaya).
fn id_of(node: Node, attributes: &[&str]) -> Option<String> {
    attribute(node, attributes)
        .map(str::to_owned)
        .or_else(|| child_text(node, "id"))
}

/// Stream ids under `send`/`recv` children: `<send>s1</send>`, `<send><id>s1</id></send>`,
/// `<send stream_id="s1"/>`.
fn stream_refs(node: Node, direction: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for reference in node.children().filter(|child| named(*child, direction)) {
        let inner: Vec<String> = reference
            .children()
            .filter(|child| named(*child, "id"))
            .map(text)
            .collect();
        let found = if !inner.is_empty() {
            inner
        } else if let Some(id) = attribute(reference, &["stream_id", "id"]) {
            vec![id.to_owned()]
        } else {
            vec![text(reference)]
        };
        extend_unique(&mut ids, found.into_iter().filter(|id| !id.is_empty()));
    }
    ids
}

fn extend_unique(into: &mut Vec<String>, from: impl IntoIterator<Item = String>) {
    for value in from {
        if !into.contains(&value) {
            into.push(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Metadata {
        parse_metadata(xml, &Limits::default()).unwrap()
    }

    const RFC7865: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns='urn:ietf:params:xml:ns:recording:1'>
  <datamode>complete</datamode>
  <group group_id="7+OTCyoxTmqmqyA/1weDAg==">
    <associate-time>2010-12-16T23:41:07Z</associate-time>
  </group>
  <session session_id="hVpd7YQgRW2nD22h7q60JQ==">
    <sipSessionID>ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2</sipSessionID>
    <group-ref>7+OTCyoxTmqmqyA/1weDAg==</group-ref>
    <start-time>2010-12-16T23:41:07Z</start-time>
  </session>
  <participant participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <nameID aor="sip:bob@biloxi.com"><name xml:lang="it">Bob</name></nameID>
  </participant>
  <participant participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <nameID aor="sip:alice@atlanta.com"><name xml:lang="it">Alice</name></nameID>
  </participant>
  <stream stream_id="UAAMm5GRQKSCMVvLyl4rFw==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>96</label></stream>
  <stream stream_id="i1Pz3to5hGk8fuXl+PbwCw==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>97</label></stream>
  <sessionrecordingassoc session_id="hVpd7YQgRW2nD22h7q60JQ=="><associate-time>2010-12-16T23:41:07Z</associate-time></sessionrecordingassoc>
  <participantsessionassoc participant_id="srfBElmCRp2QB23b7Mpk0w==" session_id="hVpd7YQgRW2nD22h7q60JQ=="/>
  <participantstreamassoc participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <send>i1Pz3to5hGk8fuXl+PbwCw==</send><recv>UAAMm5GRQKSCMVvLyl4rFw==</recv>
  </participantstreamassoc>
  <participantstreamassoc participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <send>UAAMm5GRQKSCMVvLyl4rFw==</send><recv>i1Pz3to5hGk8fuXl+PbwCw==</recv>
  </participantstreamassoc>
</recording>"#;

    #[test]
    fn rfc7865_example() {
        let metadata = parse(RFC7865);
        assert_eq!(metadata.dialect, Dialect::Rfc7865);
        assert_eq!(metadata.datamode.as_deref(), Some("complete"));
        assert_eq!(metadata.sessions.len(), 1);
        assert_eq!(
            metadata.sessions[0].start_time.as_deref(),
            Some("2010-12-16T23:41:07Z")
        );
        let bob = &metadata.participants[0];
        assert_eq!(bob.aor.as_deref(), Some("sip:bob@biloxi.com"));
        assert_eq!(bob.name.as_deref(), Some("Bob"));
        assert_eq!(bob.send, ["i1Pz3to5hGk8fuXl+PbwCw=="]);
        assert_eq!(bob.recv, ["UAAMm5GRQKSCMVvLyl4rFw=="]);
        assert_eq!(metadata.streams[0].label.as_deref(), Some("96"));
        assert_eq!(
            metadata.streams[0].session_id.as_deref(),
            Some("hVpd7YQgRW2nD22h7q60JQ==")
        );
        assert_eq!(
            metadata.correlation_ids,
            [
                CorrelationId::new("sipSessionID", "ab30317f1a784dc48ff824d0d3715d86"),
                CorrelationId::new("sipSessionID.remote", "47755a9de7794ba387653f2099600ef2"),
            ]
        );
        assert!(metadata.warnings.is_empty(), "{:?}", metadata.warnings);
    }

    #[test]
    fn prefix_namespace_bom_and_camel_case_are_ignored() {
        let xml = "\u{feff}<?xml version=\"1.0\"?><tns:recording xmlns:tns=\"urn:ietf:params:xml:ns:recording\"><tns:dataMode>partial</tns:dataMode><tns:participant id=\"p1\"><tns:nameID aor=\"1001\"/></tns:participant></tns:recording>";
        let metadata = parse(xml);
        assert_eq!(metadata.dialect, Dialect::NoVersionNamespace);
        assert_eq!(metadata.datamode.as_deref(), Some("partial"));
        assert_eq!(metadata.participants[0].aor.as_deref(), Some("1001"));
    }

    #[test]
    fn aor_as_a_child_of_name_id() {
        let xml = r#"<recording><participant participant_id="p"><nameID><aor>sip:carol@example.org</aor><name>Carol</name></nameID></participant></recording>"#;
        let participant = &parse(xml).participants[0];
        assert_eq!(participant.aor.as_deref(), Some("sip:carol@example.org"));
        assert_eq!(participant.name.as_deref(), Some("Carol"));
    }

    #[test]
    fn oracle_style_send_inside_participant() {
        let xml = r#"<recording xmlns="urn:ietf:params:xml:ns:recording"><session id="s"/><participant id="p" session="s"><nameID aor="sip:a@x"/><send>st1</send><recv>st2</recv></participant><stream id="st1" session="s"><label>16777227</label></stream><stream id="st2" session="s"><label>16777228</label></stream></recording>"#;
        let metadata = parse(xml);
        assert_eq!(metadata.participants[0].send, ["st1"]);
        assert_eq!(metadata.participants[0].recv, ["st2"]);
        assert_eq!(metadata.streams[1].session_id.as_deref(), Some("s"));
        assert!(metadata.warnings.is_empty(), "{:?}", metadata.warnings);
    }

    #[test]
    fn unresolved_references_are_warnings() {
        let xml = r#"<recording><participantstreamassoc participant_id="ghost"><send>nowhere</send></participantstreamassoc><stream stream_id="" session_id="nosession"><label>10</label></stream></recording>"#;
        let metadata = parse(xml);
        assert_eq!(metadata.dialect, Dialect::NoNamespace);
        assert_eq!(metadata.participants[0].id, "ghost");
        assert_eq!(metadata.streams[0].id, "");
        assert_eq!(metadata.warnings.len(), 4, "{:?}", metadata.warnings);
    }

    #[test]
    fn not_well_formed_and_not_metadata_are_errors() {
        for xml in [
            "<recording><participant></recording>",
            "",
            "not xml",
            "<html/>",
            "<!DOCTYPE x [<!ENTITY a \"aaaa\">]><recording>&a;</recording>",
        ] {
            let error = parse_metadata(xml, &Limits::default()).unwrap_err();
            assert!(
                matches!(error, Error::BadMetadata { .. }),
                "{xml:?}: {error}"
            );
            assert_eq!(error.sip_status(), 400);
        }
    }

    #[test]
    fn size_limit_applies_to_the_document() {
        let limits = Limits {
            max_metadata_bytes: 10,
            ..Limits::default()
        };
        assert!(matches!(
            parse_metadata(RFC7865, &limits),
            Err(Error::MetadataTooLarge { .. })
        ));
    }

    #[test]
    fn extension_data_elements_do_not_define_participants() {
        let xml = r#"<recording><extensiondata><participant id="fake"/><apkt:ucid xmlns:apkt="http://acmepacket.com/siprec/extensiondata">00fa08000100016504fd23</apkt:ucid></extensiondata></recording>"#;
        let metadata = parse(xml);
        assert!(metadata.participants.is_empty());
        assert_eq!(
            metadata.correlation_ids,
            [CorrelationId::new("ucid", "000100016504FD23")]
        );
    }

    #[test]
    fn nesting_depth_is_bounded() {
        let deep = format!(
            "<recording>{}{}</recording>",
            "<x>".repeat(MAX_DEPTH),
            "</x>".repeat(MAX_DEPTH)
        );
        assert!(too_deep(&deep));
        assert!(matches!(
            parse_metadata(&deep, &Limits::default()),
            Err(Error::BadMetadata { .. })
        ));
        let flat = format!(
            "<recording>{}</recording>",
            "<x a='>'/><y></y>".repeat(1000)
        );
        assert!(!too_deep(&flat));
        assert!(!too_deep(RFC7865));
        let hidden = format!(
            "<recording><!-- ' --><![CDATA[ \" ]]>{}</recording>",
            "<x>".repeat(MAX_DEPTH + 1)
        );
        assert!(
            too_deep(&hidden),
            "quotes in comments or CDATA must not hide nesting"
        );
    }

    #[test]
    fn names_match_ignores_case_and_separators() {
        assert!(names_match("dataMode", "datamode"));
        assert!(names_match("start_time", "start-time"));
        assert!(!names_match("sessions", "session"));
    }
}
