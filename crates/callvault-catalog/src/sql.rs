//! Helpers for building the catalog's SQL: numbered placeholders, `WHERE` clauses assembled
//! from optional filters, and literal `LIKE` patterns. Portable to both engines.

use crate::db::Arg;
use crate::error::{Error, Result};
use crate::model::is_dtmf_digit;

/// `$first, $first+1, …` for `n` binds, e.g. the list of an `IN (…)`.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Conditions joined by `AND`, with the binds they number (`$1`, `$2`… in the order added).
#[derive(Default)]
pub(crate) struct Conditions<'a> {
    conditions: Vec<String>,
    args: Vec<Arg<'a>>,
}

impl<'a> Conditions<'a> {
    /// Adds a bind; returns its placeholder.
    pub(crate) fn bind(&mut self, arg: Arg<'a>) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    /// Adds a condition (which may use placeholders returned by [`Conditions::bind`]).
    pub(crate) fn and(&mut self, condition: impl Into<String>) {
        self.conditions.push(condition.into());
    }

    /// ` WHERE a AND b…`, or nothing when there is no condition.
    pub(crate) fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        }
    }

    pub(crate) fn args(&self) -> &[Arg<'a>] {
        &self.args
    }
}

/// The `LIKE` pattern of a digits search: `%digits%`, with `\`, `%` and `_` escaped (`ESCAPE
/// '\'`). Validation already rejects them; the escaping keeps the pattern literal regardless.
pub(crate) fn digits_pattern(digits: &str) -> Result<String> {
    if let Some(bad) = digits.chars().find(|c| !is_dtmf_digit(*c)) {
        return Err(Error::InvalidQuery {
            reason: format!("{bad:?} is not a DTMF digit (expected 0-9 * # A-D !)"),
        });
    }
    Ok(like_contains(digits))
}

/// `%text%` for `LIKE … ESCAPE '\'`, matching `text` literally.
pub(crate) fn like_contains(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_contains_escapes_the_wildcards_and_the_escape() {
        assert_eq!(like_contains("12#"), "%12#%");
        assert_eq!(like_contains("5%_\\"), "%5\\%\\_\\\\%");
        assert_eq!(like_contains(""), "%%");
        assert_eq!(
            digits_pattern("0123456789*#ABCD!").unwrap(),
            "%0123456789*#ABCD!%"
        );
        for bad in ["abcd", "%", "_", " ", "E", "1\\"] {
            assert!(
                matches!(digits_pattern(bad), Err(Error::InvalidQuery { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn conditions_number_their_binds_in_order() {
        let mut c = Conditions::default();
        assert_eq!(c.where_clause(), "");
        let a = c.bind(Arg::Int(1));
        c.and(format!("x = {a}"));
        let b = c.bind(Arg::Text("y"));
        c.and(format!("(y = {b} OR z = {b})"));
        assert_eq!(c.where_clause(), " WHERE x = $1 AND (y = $2 OR z = $2)");
        assert_eq!(c.args().len(), 2);
        assert_eq!(placeholders(3, 2), "$3, $4");
    }
}
