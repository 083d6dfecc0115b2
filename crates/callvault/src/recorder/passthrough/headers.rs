//! The headers of the INVITE we send on: its Request-URI, our Contact, the caller's From
//! with our tag.

use callvault_sip::TransportKind;

/// The Request-URI of our INVITE: the route's target with the dialled user part, when the
/// target names none itself.
pub(super) fn route_uri(target: &str, user: Option<&str>) -> String {
    let Some((scheme, rest)) = target.split_once(':') else {
        return target.to_owned();
    };
    match user {
        Some(user) if !rest.contains('@') => format!("{scheme}:{user}@{rest}"),
        _ => target.to_owned(),
    }
}

/// Our Contact URI toward a peer over `transport`.
pub(super) fn contact_uri(host: &str, transport: TransportKind) -> String {
    match transport {
        TransportKind::Udp => format!("sip:callvault@{host}"),
        other => format!("sip:callvault@{host};transport={other}"),
    }
}

/// A From/To value with its `tag` parameter removed.
pub(super) fn without_tag(value: &str) -> String {
    let (addr, params) = match value.rfind('>') {
        Some(end) => value.split_at(end + 1),
        None => match value.find(';') {
            Some(at) => value.split_at(at),
            None => (value, ""),
        },
    };
    let kept: Vec<&str> = params
        .split(';')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            !p.trim()
                .get(..4)
                .is_some_and(|name| name.eq_ignore_ascii_case("tag="))
        })
        .collect();
    let mut out = addr.trim().to_owned();
    for p in kept {
        out.push(';');
        out.push_str(p.trim());
    }
    out
}

/// A From value with our tag instead of the caller's.
pub(super) fn with_tag(value: &str, tag: &str) -> String {
    format!("{};tag={tag}", without_tag(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dialled_user_goes_in_front_of_a_target_that_names_none() {
        assert_eq!(
            route_uri("sip:10.0.0.5:5060", Some("+4420123")),
            "sip:+4420123@10.0.0.5:5060"
        );
        assert_eq!(
            route_uri("sip:bob@10.0.0.5;transport=tcp", Some("+44")),
            "sip:bob@10.0.0.5;transport=tcp"
        );
        assert_eq!(route_uri("sip:10.0.0.5", None), "sip:10.0.0.5");
        assert_eq!(
            contact_uri("192.0.2.1:5060", TransportKind::Tcp),
            "sip:callvault@192.0.2.1:5060;transport=tcp"
        );
    }

    #[test]
    fn the_callers_tag_is_replaced_and_other_parameters_kept() {
        assert_eq!(
            with_tag("\"Alice\" <sip:alice@pbx;user=phone>;tag=abc;x=1", "ours"),
            "\"Alice\" <sip:alice@pbx;user=phone>;x=1;tag=ours"
        );
        assert_eq!(
            with_tag("sip:alice@pbx;TAG=abc", "ours"),
            "sip:alice@pbx;tag=ours"
        );
        assert_eq!(
            without_tag("<sip:bob@example.com>"),
            "<sip:bob@example.com>"
        );
        assert_eq!(without_tag(""), "");
    }
}
