use time::macros::{datetime, offset};

use super::*;

const EXAMPLE: &str = "{queue}_{yyyymmdd}-{hhmm}_{from}_{to}_{session_id}_{n}";

fn fields() -> NameFields<'static> {
    NameFields {
        queue: Some("sales"),
        started_at: Some(datetime!(2025-03-04 09:05:59 UTC)),
        from: Some("+4930123456"),
        to: Some("alice@example.com"),
        session_id: Some("a1b2c3"),
        recording_id: Some("0195f3c2-7d1e-7000-8000-000000000001"),
        n: Some(2),
        tenant: Some("acme"),
        label: Some("caller"),
    }
}

#[test]
fn the_example_pattern_renders_every_field() {
    let pattern = FileNamePattern::parse(EXAMPLE).unwrap();
    assert_eq!(
        pattern.render(&fields(), "wav"),
        "sales_20250304-0905_+4930123456_alice@example.com_a1b2c3_2.wav"
    );
    let other: FileNamePattern = "{tenant}-{recording_id}-{label}-{hhmmss}".parse().unwrap();
    assert_eq!(
        other.render(&fields(), "mp3"),
        "acme-0195f3c2-7d1e-7000-8000-000000000001-caller-090559.mp3"
    );
}

#[test]
fn times_are_rendered_in_the_offset_given() {
    let pattern = FileNamePattern::parse("{yyyymmdd}{hhmm}").unwrap();
    let fields = NameFields {
        started_at: Some(datetime!(2025-12-31 23:30 UTC).to_offset(offset!(+1))),
        ..NameFields::default()
    };
    assert_eq!(pattern.render(&fields, "wav"), "202601010030.wav");
}

#[test]
fn hostile_values_cannot_escape_or_break_the_name() {
    let pattern = FileNamePattern::parse(EXAMPLE).unwrap();
    let fields = NameFields {
        queue: Some("../../etc"),
        from: Some("\"evil\"\r\nX-Injected: 1"),
        to: Some("C:\\Windows\\system32"),
        session_id: Some("a/b\0c\u{7f}d\te"),
        ..fields()
    };
    let name = pattern.render(&fields, "wav");
    assert_eq!(
        name,
        "etc_20250304-0905__evil_X-Injected_1_C_Windows_system32_a_b_c_d_e_2.wav"
    );
    assert!(!name.contains(['/', '\\', '"', '\r', '\n', '\0', ':', ' ']));
    assert!(!name.starts_with('.'));
}

#[test]
fn missing_values_leave_no_dangling_separators_at_the_ends() {
    let pattern = FileNamePattern::parse(EXAMPLE).unwrap();
    let name = pattern.render(
        &NameFields {
            session_id: Some("s1"),
            ..NameFields::default()
        },
        "wav",
    );
    assert_eq!(name, "s1.wav");
    let nothing = pattern.render(&NameFields::default(), "wav");
    assert_eq!(nothing, "recording.wav");
}

#[test]
fn letters_of_any_script_are_kept() {
    let pattern = FileNamePattern::parse("{from}_{to}").unwrap();
    let fields = NameFields {
        from: Some("Jürgen Müller"),
        to: Some("東京"),
        ..NameFields::default()
    };
    assert_eq!(pattern.render(&fields, "wav"), "Jürgen_Müller_東京.wav");
}

#[test]
fn names_are_bounded() {
    let pattern = FileNamePattern::parse(EXAMPLE).unwrap();
    let long = "x".repeat(1000);
    let wide = "ü".repeat(1000);
    let fields = NameFields {
        queue: Some(&long),
        from: Some(&wide),
        to: Some(&wide),
        session_id: Some(&wide),
        ..fields()
    };
    let name = pattern.render(&fields, "wav");
    assert!(name.len() <= MAX_NAME_BYTES, "{}", name.len());
    assert!(name.ends_with(".wav"));
    // Each value is cut to its own bound, and the whole cut on a character boundary.
    assert!(name.starts_with(&format!("{}_2025", "x".repeat(MAX_VALUE_CHARS))));
    assert!(name.trim_end_matches(".wav").ends_with('ü'));
}

#[test]
fn device_names_windows_keeps_are_avoided() {
    let pattern = FileNamePattern::parse("{queue}").unwrap();
    for (queue, expected) in [
        ("CON", "_CON.wav"),
        ("nul", "_nul.wav"),
        ("com1", "_com1.wav"),
        ("console", "console.wav"),
    ] {
        let fields = NameFields {
            queue: Some(queue),
            ..NameFields::default()
        };
        assert_eq!(pattern.render(&fields, "wav"), expected);
    }
}

#[test]
fn bad_patterns_are_refused_when_configured() {
    let refused = |pattern: &str| match FileNamePattern::parse(pattern) {
        Err(Error::Pattern { problem, .. }) => problem,
        other => panic!("{pattern:?} gave {other:?}"),
    };
    assert_eq!(
        refused("{queue}_{caller}"),
        PatternProblem::UnknownPlaceholder("caller".into())
    );
    assert_eq!(
        refused("{QUEUE}"),
        PatternProblem::UnknownPlaceholder("QUEUE".into())
    );
    assert_eq!(refused("{queue"), PatternProblem::Unclosed);
    assert_eq!(refused("queue}"), PatternProblem::StrayBrace);
    assert_eq!(
        refused("{{queue}}"),
        PatternProblem::UnknownPlaceholder("{queue".into())
    );
    assert_eq!(refused("calls/{queue}"), PatternProblem::PathSeparator);
    assert_eq!(refused("calls\\{queue}"), PatternProblem::PathSeparator);
    assert_eq!(refused("a\tb"), PatternProblem::ControlCharacter);
    assert_eq!(refused("  "), PatternProblem::Empty);
    let message = FileNamePattern::parse("{caller}").unwrap_err().to_string();
    assert_eq!(
        message,
        "file-name pattern \"{caller}\": unknown placeholder {caller}"
    );
}

#[test]
fn content_disposition_carries_an_ascii_fallback_and_the_utf8_name() {
    assert_eq!(
        content_disposition("sales_20250304-0905.wav"),
        "attachment; filename=\"sales_20250304-0905.wav\"; \
         filename*=UTF-8''sales_20250304-0905.wav"
    );
    assert_eq!(
        content_disposition("Jürgen_東京.mp3"),
        "attachment; filename=\"J_rgen___.mp3\"; \
         filename*=UTF-8''J%C3%BCrgen_%E6%9D%B1%E4%BA%AC.mp3"
    );
    // Whatever it is given, it cannot be broken out of.
    let hostile = content_disposition("a\"; filename=\"x.exe\r\n.wav");
    let text = hostile.to_str().unwrap();
    assert_eq!(text.matches('"').count(), 2, "{text}");
    assert!(
        text.starts_with("attachment; filename=\"a_filename_x.exe.wav\";"),
        "{text}"
    );
}

#[test]
fn sanitize_file_name_keeps_a_short_extension() {
    assert_eq!(sanitize_file_name("../../etc/passwd"), "etc_passwd");
    assert_eq!(sanitize_file_name("a b.WAV"), "a_b.WAV");
    assert_eq!(sanitize_file_name("...."), "recording");
    assert_eq!(sanitize_file_name(".hidden.wav"), "hidden.wav");
    assert_eq!(sanitize_file_name("name."), "name");
}
