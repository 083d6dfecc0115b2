//! Every SRC dialect in INTEROP.md, as wire bodies in `tests/fixtures/<name>.sip`, each with the
//! expected reading beside it in `<name>.expected` (see `tests/fixtures/README.md`).
//!
//! A fixture is the SIP headers that matter (Content-Type first) and the body exactly as sent.
//! The test parses the body, binds the m-lines, extracts header correlation ids, renders all of
//! it as text, and compares with the expected file line by line.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use callvault_siprec::{
    Limits, Metadata, RecordingOffer, Sdp, bind_streams, correlation_from_headers, parse_body,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Fixture {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn load(name: &str) -> Fixture {
    let raw = std::fs::read(fixtures().join(format!("{name}.sip"))).unwrap();
    let (split, gap) = [&b"\r\n\r\n"[..], b"\n\n"]
        .iter()
        .filter_map(|gap| {
            raw.windows(gap.len())
                .position(|w| w == *gap)
                .map(|i| (i, gap.len()))
        })
        .min()
        .expect("fixture has a blank line after its headers");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let headers = head
        .lines()
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header line");
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    Fixture {
        headers,
        body: raw[split + gap..].to_vec(),
    }
}

impl Fixture {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn offer(&self) -> callvault_siprec::Result<RecordingOffer> {
        parse_body(self.header("Content-Type"), &self.body, &Limits::default())
    }
}

fn opt(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

fn render_sdp(out: &mut String, sdp: &Sdp) {
    let connection = sdp.connection.map_or("-".into(), |c| c.to_string());
    writeln!(out, "sdp origin={} c={connection}", sdp.origin_session_id).unwrap();
    for (i, m) in sdp.media.iter().enumerate() {
        let connection = m.connection.map_or("-".into(), |c| c.to_string());
        let ptime = m.ptime.map_or("-".into(), |p| p.to_string());
        writeln!(
            out,
            "m{i} {} {} {} {} label={} c={connection} ptime={ptime} rtcp-mux={} hold={}",
            m.kind,
            m.port,
            m.protocol,
            m.direction.as_str(),
            opt(m.label.as_deref()),
            m.rtcp_mux,
            m.is_on_hold()
        )
        .unwrap();
        for f in &m.formats {
            writeln!(
                out,
                "m{i} format {} {}/{}/{} fmtp={}",
                f.payload_type,
                f.encoding,
                f.clock_rate,
                f.channels,
                opt(f.fmtp.as_deref())
            )
            .unwrap();
        }
        for c in &m.crypto {
            let usable = match &c.usable {
                Ok(offer) => format!(
                    "usable mki={} unencrypted_srtcp={}",
                    offer
                        .keying
                        .mki()
                        .map_or("-".into(), |m| format!("{}:{}", m.value, m.length)),
                    offer.unencrypted_srtcp
                ),
                Err(reason) => format!("declined {reason}"),
            };
            writeln!(out, "m{i} crypto tag={} suite={} {usable}", c.tag, c.suite).unwrap();
        }
    }
}

fn render_metadata(out: &mut String, md: &Metadata) {
    writeln!(
        out,
        "metadata dialect={:?} datamode={}",
        md.dialect,
        opt(md.datamode.as_deref())
    )
    .unwrap();
    for s in &md.sessions {
        writeln!(
            out,
            "session {} sip={:?} start={}",
            s.id,
            s.sip_session_ids,
            opt(s.start_time.as_deref())
        )
        .unwrap();
    }
    for p in &md.participants {
        writeln!(
            out,
            "participant {:?} aor={} name={} send={:?} recv={:?}",
            p.id,
            opt(p.aor.as_deref()),
            opt(p.name.as_deref()),
            p.send,
            p.recv
        )
        .unwrap();
    }
    for s in &md.streams {
        writeln!(
            out,
            "stream {:?} label={} session={}",
            s.id,
            opt(s.label.as_deref()),
            opt(s.session_id.as_deref())
        )
        .unwrap();
    }
    for c in &md.correlation_ids {
        writeln!(out, "correlation {}={}", c.kind, c.value).unwrap();
    }
    for w in &md.warnings {
        writeln!(out, "warning {w}").unwrap();
    }
}

fn render(name: &str) -> String {
    let fixture = load(name);
    let mut out = String::new();
    let offer = match fixture.offer() {
        Ok(offer) => offer,
        Err(error) => {
            let debug = format!("{error:?}");
            let variant = debug.split([' ', '{', '(']).next().unwrap_or_default();
            writeln!(out, "error {} {variant}", error.sip_status()).unwrap();
            return out;
        }
    };
    if let Some(sdp) = &offer.sdp {
        render_sdp(&mut out, sdp);
    }
    if let Some(md) = &offer.metadata {
        render_metadata(&mut out, md);
        assert!(
            offer
                .raw_metadata
                .as_deref()
                .is_some_and(|raw| raw.contains("recording"))
        );
    }
    // A metadata-only body (Avaya UPDATE) is bound against the dialog's SDP, named by the
    // fixture-only header X-Fixture-Sdp-From.
    let sdp = match fixture.header("X-Fixture-Sdp-From") {
        Some(other) => load(other).offer().unwrap().sdp,
        None => offer.sdp.clone(),
    };
    if let Some(sdp) = &sdp {
        for b in bind_streams(sdp, offer.metadata.as_ref()) {
            writeln!(
                out,
                "binding m{} label={} stream={} participant={} senders={:?} rule={}",
                b.media_index,
                b.label,
                opt(b.stream_id.as_deref()),
                opt(b.participant_id.as_deref()),
                b.senders,
                b.rule.as_str()
            )
            .unwrap();
        }
    }
    let headers = fixture
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()));
    for c in correlation_from_headers(headers) {
        writeln!(out, "header-correlation {}={}", c.kind, c.value).unwrap();
    }
    out
}

fn check(name: &str) {
    let actual = render(name);
    let expected = std::fs::read_to_string(fixtures().join(format!("{name}.expected"))).unwrap();
    let expected: Vec<&str> = expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    let actual: Vec<&str> = actual.lines().collect();
    assert_eq!(
        actual,
        expected,
        "\n--- actual {name} ---\n{}\n",
        actual.join("\n")
    );
}

macro_rules! fixtures {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { check(stringify!($name)); } )*
        const NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

fixtures!(
    oracle_acme,
    cisco_cube,
    cisco_bib,
    audiocodes,
    avaya_sbce_invite,
    avaya_sbce_update,
    ribbon,
    metaswitch,
    broadworks,
    opensips_pause,
    sems,
    malformed_broken_boundary,
    malformed_truncated,
    malformed_xml,
    malformed_sdp_garbage,
    malformed_unsupported_type,
);

#[test]
fn every_fixture_has_a_test_and_an_expected_result() {
    let mut found: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            (path.extension()? == "sip")
                .then(|| path.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    found.sort();
    let mut listed: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed);
    for name in NAMES {
        assert!(
            fixtures().join(format!("{name}.expected")).exists(),
            "{name}.expected missing"
        );
    }
}
