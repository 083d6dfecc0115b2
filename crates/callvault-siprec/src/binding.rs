//! Which m-line records which participant (INTEROP.md rule 3): the metadata's stream
//! associations first, then label equality alone, then document order; the rule that decided is
//! recorded so an operator can see how confident the attribution is.

use crate::metadata::Metadata;
use crate::sdp::Sdp;

/// How an m-line was tied to the metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")] // the same strings as `as_str`
pub enum BindingRule {
    /// The m-line's `a=label` names a metadata stream that a participant sends
    /// (`participantstreamassoc`, or `send` inside `participant`).
    #[serde(rename = "association")]
    StreamAssociation,
    /// The label names a metadata stream, but no participant is said to send it.
    Label,
    /// No stream has the label; the m-line took the next unbound stream (or, when the metadata
    /// describes no streams at all, the next participant) in document order.
    Order,
    /// Nothing to bind to: no metadata, or more m-lines than streams.
    Unbound,
}

impl BindingRule {
    /// `association`, `label`, `order`, `unbound` — stable strings for the catalog and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            BindingRule::StreamAssociation => "association",
            BindingRule::Label => "label",
            BindingRule::Order => "order",
            BindingRule::Unbound => "unbound",
        }
    }
}

/// One m-line's place in the metadata.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StreamBinding {
    pub media_index: usize,
    /// `a=label`, else the m-line index as a string.
    pub label: String,
    pub stream_id: Option<String>,
    /// The participant this leg records; `None` when unknown or when the stream is mixed
    /// (more than one sender, e.g. Metaswitch's single m-line — see `senders`).
    pub participant_id: Option<String>,
    /// Every participant said to send this stream (two or more for a mixed stream).
    pub senders: Vec<String>,
    pub rule: BindingRule,
}

/// Bind each m-line of `sdp` to a metadata stream and participant. Always one binding per
/// m-line, in m-line order.
pub fn bind_streams(sdp: &Sdp, metadata: Option<&Metadata>) -> Vec<StreamBinding> {
    let mut bindings: Vec<StreamBinding> = sdp
        .media
        .iter()
        .enumerate()
        .map(|(index, media)| StreamBinding {
            media_index: index,
            label: media.label.clone().unwrap_or_else(|| index.to_string()),
            stream_id: None,
            participant_id: None,
            senders: Vec::new(),
            rule: BindingRule::Unbound,
        })
        .collect();
    let Some(metadata) = metadata else {
        return bindings;
    };
    let senders_of = |stream_id: &str| -> Vec<String> {
        if stream_id.is_empty() {
            return Vec::new();
        }
        metadata
            .participants
            .iter()
            .filter(|p| p.send.iter().any(|s| s == stream_id))
            .map(|p| p.id.clone())
            .collect()
    };
    let mut stream_taken = vec![false; metadata.streams.len()];

    // Pass 1: the m-line's own label names a stream (by its label, or by its id for SRCs that
    // use one as the other). Only a real a=label counts; an index is not a label.
    for (binding, media) in bindings.iter_mut().zip(&sdp.media) {
        let Some(label) = media.label.as_deref() else {
            continue;
        };
        let found = metadata
            .streams
            .iter()
            .enumerate()
            .find(|(i, s)| !stream_taken[*i] && s.label.as_deref() == Some(label))
            .or_else(|| {
                metadata
                    .streams
                    .iter()
                    .enumerate()
                    .find(|(i, s)| !stream_taken[*i] && !s.id.is_empty() && s.id == label)
            });
        if let Some((index, stream)) = found {
            stream_taken[index] = true;
            let senders = senders_of(&stream.id);
            binding.rule = if senders.is_empty() {
                BindingRule::Label
            } else {
                BindingRule::StreamAssociation
            };
            // An empty id (Avaya) matched by label is still no usable stream id.
            binding.stream_id = Some(stream.id.clone()).filter(|id| !id.is_empty());
            binding.set_senders(senders);
        }
    }

    // Pass 2: what is left, in order.
    let mut participant_taken: Vec<bool> = metadata
        .participants
        .iter()
        .map(|p| bindings.iter().any(|b| b.senders.contains(&p.id)))
        .collect();
    for binding in bindings
        .iter_mut()
        .filter(|b| b.rule == BindingRule::Unbound)
    {
        if let Some(index) = stream_taken.iter().position(|taken| !taken) {
            stream_taken[index] = true;
            let stream = &metadata.streams[index];
            binding.rule = BindingRule::Order;
            binding.stream_id = Some(stream.id.clone()).filter(|id| !id.is_empty());
            binding.set_senders(senders_of(&stream.id));
        } else if metadata.streams.is_empty()
            && let Some(index) = participant_taken.iter().position(|taken| !taken)
        {
            participant_taken[index] = true;
            binding.rule = BindingRule::Order;
            binding.set_senders(vec![metadata.participants[index].id.clone()]);
        }
    }
    bindings
}

impl StreamBinding {
    fn set_senders(&mut self, senders: Vec<String>) {
        self.participant_id = match senders.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        };
        self.senders = senders;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Limits;
    use crate::metadata::parse_metadata;
    use crate::sdp::parse_sdp;

    fn sdp(labels: &[Option<&str>]) -> Sdp {
        let mut text =
            String::from("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n");
        for (i, label) in labels.iter().enumerate() {
            text.push_str(&format!(
                "m=audio {} RTP/AVP 0\r\na=sendonly\r\n",
                5000 + 2 * i
            ));
            if let Some(label) = label {
                text.push_str(&format!("a=label:{label}\r\n"));
            }
        }
        parse_sdp(&text).unwrap()
    }

    fn metadata(xml: &str) -> Metadata {
        parse_metadata(xml, &Limits::default()).unwrap()
    }

    fn summary(
        bindings: &[StreamBinding],
    ) -> Vec<(String, Option<String>, Option<String>, &'static str)> {
        bindings
            .iter()
            .map(|b| {
                (
                    b.label.clone(),
                    b.stream_id.clone(),
                    b.participant_id.clone(),
                    b.rule.as_str(),
                )
            })
            .collect()
    }

    fn row(
        label: &str,
        stream: Option<&str>,
        participant: Option<&str>,
        rule: &'static str,
    ) -> (String, Option<String>, Option<String>, &'static str) {
        (
            label.into(),
            stream.map(Into::into),
            participant.map(Into::into),
            rule,
        )
    }

    #[test]
    fn association_wins_even_when_streams_are_listed_in_another_order() {
        let md = metadata(
            r#"<recording><participant participant_id="B"/><participant participant_id="A"/><stream stream_id="sb"><label>2</label></stream><stream stream_id="sa"><label>1</label></stream><participantstreamassoc participant_id="A"><send>sa</send></participantstreamassoc><participantstreamassoc participant_id="B"><send>sb</send></participantstreamassoc></recording>"#,
        );
        let bindings = bind_streams(&sdp(&[Some("1"), Some("2")]), Some(&md));
        assert_eq!(
            summary(&bindings),
            [
                row("1", Some("sa"), Some("A"), "association"),
                row("2", Some("sb"), Some("B"), "association")
            ]
        );
    }

    #[test]
    fn label_without_sender() {
        let md = metadata(
            r#"<recording><participant participant_id="dummy"/><stream stream_id="s10"><label>10</label></stream><stream stream_id="s20"><label>20</label></stream></recording>"#,
        );
        let bindings = bind_streams(&sdp(&[Some("20"), Some("10")]), Some(&md));
        assert_eq!(
            summary(&bindings),
            [
                row("20", Some("s20"), None, "label"),
                row("10", Some("s10"), None, "label")
            ]
        );
    }

    #[test]
    fn label_equal_to_stream_id() {
        let md = metadata(
            r#"<recording><participant participant_id="p"><send>a_leg</send></participant><stream stream_id="a_leg"/></recording>"#,
        );
        let bindings = bind_streams(&sdp(&[Some("a_leg")]), Some(&md));
        assert_eq!(
            summary(&bindings),
            [row("a_leg", Some("a_leg"), Some("p"), "association")]
        );
    }

    #[test]
    fn order_over_streams_when_labels_do_not_match() {
        let md = metadata(
            r#"<recording><participant participant_id="A"><send>s1</send></participant><participant participant_id="B"><send>s2</send></participant><stream stream_id="s1"><label>x</label></stream><stream stream_id="s2"><label>y</label></stream></recording>"#,
        );
        let bindings = bind_streams(&sdp(&[Some("1"), None, None]), Some(&md));
        assert_eq!(
            summary(&bindings),
            [
                row("1", Some("s1"), Some("A"), "order"),
                row("1", Some("s2"), Some("B"), "order"),
                row("2", None, None, "unbound")
            ]
        );
    }

    #[test]
    fn order_over_participants_when_metadata_has_no_streams() {
        let md = metadata(
            r#"<recording><participant participant_id="A"/><participant participant_id="B"/></recording>"#,
        );
        let bindings = bind_streams(&sdp(&[Some("1"), Some("2")]), Some(&md));
        assert_eq!(
            summary(&bindings),
            [
                row("1", None, Some("A"), "order"),
                row("2", None, Some("B"), "order")
            ]
        );
    }

    #[test]
    fn mixed_stream_has_two_senders_and_no_single_participant() {
        let md = metadata(
            r#"<recording><participant participant_id="A"><send>m</send></participant><participant participant_id="B"><send>m</send></participant><stream stream_id="m"><label>1</label></stream></recording>"#,
        );
        let bindings = bind_streams(&sdp(&[Some("1")]), Some(&md));
        assert_eq!(
            summary(&bindings),
            [row("1", Some("m"), None, "association")]
        );
        assert_eq!(bindings[0].senders, ["A", "B"]);
    }

    #[test]
    fn no_metadata_leaves_everything_unbound() {
        let bindings = bind_streams(&sdp(&[None]), None);
        assert_eq!(summary(&bindings), [row("0", None, None, "unbound")]);
    }
}
