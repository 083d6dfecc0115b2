//! The reason a request gives for what it does, and `[api] require_reason`.

use http::HeaderMap;

use crate::error::{Error, Result};
use crate::settings::{ApiSettings, ReasonAction};

/// The header carrying a GET's reason (a body's `reason` field takes precedence).
pub const REASON_HEADER: &str = "x-callvault-reason";

/// The reason a request gives: `given` (from its body or `reason` query parameter) or else the
/// `X-Callvault-Reason` header; blank counts as none. A header that is not visible ASCII (a
/// header cannot carry UTF-8 safely) is 400: send such a reason in the body or the query.
pub(crate) fn given(headers: &HeaderMap, given: Option<String>) -> Result<Option<String>> {
    let reason = match given {
        Some(reason) => Some(reason),
        None => match headers.get(REASON_HEADER) {
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| Error::BadRequest {
                        reason: "X-Callvault-Reason must be ASCII; send the reason as the \
                                 `reason` query parameter or in the body instead"
                            .to_owned(),
                    })?
                    .to_owned(),
            ),
            None => None,
        },
    };
    let reason = reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON)
    {
        return Err(Error::Invalid {
            reason: format!("a reason has at most {MAX_REASON} characters"),
        });
    }
    Ok(reason)
}

/// The longest reason kept (as the catalog's).
const MAX_REASON: usize = 1000;

/// Applies `[api] require_reason` (and `reasons`) for `action` to the reason a request gave:
/// one of the pick list, or, with `allow_other_reason`, any reason typed.
pub(crate) fn check(
    settings: &ApiSettings,
    action: ReasonAction,
    reason: Option<String>,
) -> Result<Option<String>> {
    if !settings.requires_reason(action) {
        return Ok(reason);
    }
    let reason = reason.ok_or(Error::ReasonRequired(action))?;
    if !settings.reasons.is_empty()
        && !settings.allow_other_reason
        && !settings.reasons.iter().any(|r| r.trim() == reason)
    {
        return Err(Error::ReasonNotAllowed);
    }
    Ok(Some(reason))
}

/// [`given`] then [`check`].
pub(crate) fn require(
    settings: &ApiSettings,
    action: ReasonAction,
    headers: &HeaderMap,
    in_request: Option<String>,
) -> Result<Option<String>> {
    check(settings, action, given(headers, in_request)?)
}
