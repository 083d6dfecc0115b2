//! Header fields: an ordered list of (name, value) as received, looked up by canonical name, and
//! the few value grammars the transaction and dialog layers need (name-addr, parameters, lists).

/// Header fields in wire order. Names keep the sender's spelling; values are unfolded (RFC 3261
/// §7.3.1: a line starting with whitespace continues the previous one) and trimmed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Headers {
    fields: Vec<(String, String)>,
}

/// The full name of a header given in compact form (RFC 3261 §7.3.3 and the extensions that
/// define one), else the name itself. Compare results with `eq_ignore_ascii_case`.
fn expand(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes()[0].to_ascii_lowercase() {
        b'a' => "accept-contact",
        b'b' => "referred-by",
        b'c' => "content-type",
        b'd' => "request-disposition",
        b'e' => "content-encoding",
        b'f' => "from",
        b'i' => "call-id",
        b'j' => "reject-contact",
        b'k' => "supported",
        b'l' => "content-length",
        b'm' => "contact",
        b'n' => "identity-info",
        b'o' => "event",
        b'r' => "refer-to",
        b's' => "subject",
        b't' => "to",
        b'u' => "allow-events",
        b'v' => "via",
        b'x' => "session-expires",
        b'y' => "identity",
        _ => name,
    }
}

/// Whether two header names are the same header: case-insensitive, compact forms resolved.
/// Allocation-free, as it runs for every field of every lookup.
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    expand(a).eq_ignore_ascii_case(expand(b))
}

impl Headers {
    pub(crate) fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.fields.push((name.into(), value.into()));
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| same_name(n, name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| same_name(n, name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Replaces the value of the first field of that name, or appends one.
    pub(crate) fn set(&mut self, name: &str, value: String) {
        match self.fields.iter_mut().find(|(n, _)| same_name(n, name)) {
            Some(field) => field.1 = value,
            None => self.push(name, value),
        }
    }

    /// Keeps the fields `keep` returns true for, in order; it may rewrite a value it keeps.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str, &mut String) -> bool) {
        self.fields.retain_mut(|(n, v)| keep(n, v));
    }

    pub(crate) fn remove(&mut self, name: &str) {
        self.fields.retain(|(n, _)| !same_name(n, name));
    }

    /// The first field of that name, mutably.
    pub(crate) fn first_mut(&mut self, name: &str) -> Option<&mut String> {
        self.fields
            .iter_mut()
            .find(|(n, _)| same_name(n, name))
            .map(|(_, v)| v)
    }
}

/// Byte offsets of `needle` in `s` that lie outside double quotes and angle brackets.
fn unquoted_positions(s: &str, needle: u8) -> impl Iterator<Item = usize> + '_ {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut angle = 0usize;
    s.bytes().enumerate().filter_map(move |(i, b)| {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
            return None;
        }
        match b {
            b'"' => in_quotes = true,
            b'<' => angle += 1,
            b'>' => angle = angle.saturating_sub(1),
            _ if b == needle && angle == 0 => return Some(i),
            _ => {}
        }
        None
    })
}

/// Splits a comma-separated header value (Via, Contact, Route...) into its elements, ignoring
/// commas inside quoted strings and angle brackets.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    let mut out = split_list_raw(value);
    out.retain(|s| !s.is_empty());
    out
}

/// Like [`split_list`] but keeps empty elements, for validation.
pub(crate) fn split_list_raw(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in unquoted_positions(value, b',') {
        out.push(value[start..i].trim());
        start = i + 1;
    }
    out.push(value[start..].trim());
    out
}

/// The parts of a name-addr / addr-spec header value (From, To, Contact, Route).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NameAddr<'a> {
    pub display: Option<&'a str>,
    pub uri: &'a str,
    /// Everything after the address: `;tag=..;x=y`, header parameters only.
    pub params: &'a str,
}

/// Parses `"Name" <sip:a@b;uparam>;tag=x` or `sip:a@b;tag=x` (no angle brackets: RFC 3261 §20.10
/// says every `;` parameter then belongs to the header, not the URI).
pub(crate) fn name_addr(value: &str) -> NameAddr<'_> {
    let value = value.trim();
    // `<` outside quotes opens the URI.
    let open = {
        let mut in_quotes = false;
        let mut escaped = false;
        let mut found = None;
        for (i, b) in value.bytes().enumerate() {
            if in_quotes {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_quotes = false;
                }
            } else if b == b'"' {
                in_quotes = true;
            } else if b == b'<' {
                found = Some(i);
                break;
            }
        }
        found
    };
    if let Some(open) = open {
        let rest = &value[open + 1..];
        let (uri, params) = match rest.find('>') {
            Some(close) => (&rest[..close], &rest[close + 1..]),
            None => (rest, ""),
        };
        let display = value[..open].trim();
        NameAddr {
            display: (!display.is_empty()).then_some(display),
            uri: uri.trim(),
            params: params.trim(),
        }
    } else {
        let (uri, params) = match value.find(';') {
            Some(i) => (&value[..i], &value[i..]),
            None => (value, ""),
        };
        NameAddr {
            display: None,
            uri: uri.trim(),
            params,
        }
    }
}

/// Removes the quotes and backslash escapes of a display name.
pub(crate) fn unquote(display: &str) -> String {
    let d = display.trim();
    if d.len() >= 2 && d.starts_with('"') && d.ends_with('"') {
        let mut out = String::with_capacity(d.len());
        let mut chars = d[1..d.len() - 1].chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            } else {
                out.push(c);
            }
        }
        out
    } else {
        d.to_owned()
    }
}

/// Iterates `;name=value` parameters (names trimmed, values trimmed; `None` for a bare name).
pub(crate) fn params(s: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    let mut cuts: Vec<usize> = unquoted_positions(s, b';').collect();
    cuts.push(s.len());
    let mut start = 0usize;
    let mut out = Vec::with_capacity(cuts.len());
    for cut in cuts {
        let part = s[start..cut].trim();
        start = cut + 1;
        if part.is_empty() {
            continue;
        }
        match part.split_once('=') {
            Some((n, v)) => out.push((n.trim(), Some(v.trim()))),
            None => out.push((part, None)),
        }
    }
    out.into_iter()
}

/// The value of parameter `name` (case-insensitive) in a `;`-separated parameter string.
pub(crate) fn param<'a>(s: &'a str, name: &str) -> Option<Option<&'a str>> {
    params(s)
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The `tag` parameter of a From/To value.
pub(crate) fn tag(value: &str) -> Option<&str> {
    param(name_addr(value).params, "tag")
        .flatten()
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_forms_resolve_both_ways() {
        assert!(same_name("i", "Call-ID"));
        assert!(same_name("CALL-id", "I"));
        assert!(same_name("l", "content-length"));
        assert!(!same_name("t", "from"));
        let mut h = Headers::default();
        h.push("v", "SIP/2.0/UDP a");
        h.push("Via", "SIP/2.0/UDP b");
        assert_eq!(
            h.get_all("VIA").collect::<Vec<_>>(),
            ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]
        );
    }

    #[test]
    fn name_addr_with_and_without_brackets() {
        let n = name_addr(r#""J Rosenberg \\\"" <sip:jdrosen@example.com;lr> ; tag = 98asjd8"#);
        assert_eq!(n.uri, "sip:jdrosen@example.com;lr");
        assert_eq!(unquote(n.display.unwrap()), r#"J Rosenberg \""#);
        assert_eq!(param(n.params, "tag"), Some(Some("98asjd8")));
        // Oracle: Contact without angle brackets, params belong to the header.
        let n = name_addr("sip:srs@10.0.0.1:5060;+sip.src");
        assert_eq!(n.uri, "sip:srs@10.0.0.1:5060");
        assert_eq!(param(n.params, "+sip.src"), Some(None));
        // Avaya: `+sip.src` inside the brackets stays in the URI.
        let n = name_addr("<sip:srs@10.0.0.1;+sip.src>");
        assert_eq!(n.uri, "sip:srs@10.0.0.1;+sip.src");
        assert_eq!(n.display, None);
    }

    #[test]
    fn a_comma_in_quotes_or_brackets_does_not_split() {
        assert_eq!(
            split_list(r#""a, b" <sip:x@y;p=a,b>, <sip:z@w>"#),
            [r#""a, b" <sip:x@y;p=a,b>"#, "<sip:z@w>"]
        );
    }

    #[test]
    fn tag_is_found_with_odd_spacing_and_missing() {
        assert_eq!(tag("sip:a@b ;   tag    = 1918181833n"), Some("1918181833n"));
        assert_eq!(tag("<sip:a@b;tag=inuri>"), None);
        assert_eq!(tag("<sip:a@b>;tag="), None);
    }
}
