//! What reviewers add to a recording: annotations (notes, optionally at an offset into the
//! audio) and the review (a 1-5 score, the "complete transaction" flag, categories, custom
//! data, time spent), and the custom data fields an admin defines. Every change is audited.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::Catalog;
use super::audit::{AuditAction, NewAuditEntry, append};
use super::lock_recording;
use super::locks::audit_recording;
use crate::db::{Arg, Row, Tx};
use crate::error::{Error, Result};
use crate::model::to_unix_ms;
use crate::scope::{Actor, Scope};

/// A note on a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    pub id: String,
    pub text: String,
    /// Milliseconds into the audio (the legs' common timeline) it is about, if any.
    pub offset_ms: Option<i64>,
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A note to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAnnotation {
    /// 1 to 10,000 characters.
    pub text: String,
    /// Not negative.
    #[serde(default)]
    pub offset_ms: Option<i64>,
}

/// A recording's review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// 1 to 5.
    pub score: Option<i64>,
    /// The "complete transaction" flag.
    pub complete: Option<bool>,
    pub categories: Vec<String>,
    /// Values of the admin-defined [`CustomField`]s, by name.
    pub custom: Map<String, Value>,
    /// Time spent reviewing.
    pub review_seconds: Option<i64>,
}

/// A partial change of a review: an absent field is left as it is; `null` clears `score`,
/// `complete` and `review_seconds`. `categories` replaces the list. `custom` is merged key by
/// key (a key set to `null` is removed), each value checked against its field's kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewUpdate {
    #[serde(default, deserialize_with = "present")]
    pub score: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub complete: Option<Option<bool>>,
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    #[serde(default)]
    pub custom: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    pub review_seconds: Option<Option<i64>>,
}

/// A field that is present reads as `Some`, even when `null`: absent (`None`, by
/// `#[serde(default)]`) and `null` (`Some(None)`) mean different things in a partial update.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The kind of value a custom field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CustomFieldKind {
    /// A JSON string.
    Text,
    /// A JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A string `YYYY-MM-DD`.
    Date,
}

impl CustomFieldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CustomFieldKind::Text => "text",
            CustomFieldKind::Number => "number",
            CustomFieldKind::Boolean => "boolean",
            CustomFieldKind::Date => "date",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        let date = time::macros::format_description!("[year]-[month]-[day]");
        match self {
            CustomFieldKind::Text => value.is_string(),
            CustomFieldKind::Number => value.is_number(),
            CustomFieldKind::Boolean => value.is_boolean(),
            CustomFieldKind::Date => value
                .as_str()
                .is_some_and(|s| time::Date::parse(s, date).is_ok()),
        }
    }
}

impl fmt::Display for CustomFieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given to [`CustomFieldKind::from_str`] is not a kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown custom field kind {0:?} (expected text, number, boolean or date)")]
pub struct UnknownCustomFieldKind(pub String);

impl FromStr for CustomFieldKind {
    type Err = UnknownCustomFieldKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            CustomFieldKind::Text,
            CustomFieldKind::Number,
            CustomFieldKind::Boolean,
            CustomFieldKind::Date,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| UnknownCustomFieldKind(s.to_owned()))
    }
}

/// A custom data field an admin defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomField {
    /// 1-64 characters of `A-Z a-z 0-9 _ . -`.
    pub name: String,
    pub kind: CustomFieldKind,
}

const MAX_ANNOTATION: usize = 10_000;
const MAX_CATEGORIES: usize = 50;
const MAX_CATEGORY: usize = 100;

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field,
        reason: reason.into(),
    }
}

pub(super) const ANNOTATION_COLUMNS: &str = "id, recording_id, body, offset_ms, author, created_at";

pub(super) fn annotation_from_row(row: &Row) -> Result<Annotation> {
    Ok(Annotation {
        id: row.text("id")?,
        text: row.text("body")?,
        offset_ms: row.opt_int("offset_ms")?,
        by: row.text("author")?,
        at: row.time("created_at")?,
    })
}

/// The review columns of a `recordings` row.
pub(super) fn review_from_row(row: &Row) -> Result<Review> {
    Ok(Review {
        score: row.opt_int("score")?,
        complete: row.opt_flag("complete_transaction")?,
        categories: row.json("categories")?,
        custom: row.json("custom")?,
        review_seconds: row.opt_int("review_seconds")?,
    })
}

pub(super) const REVIEW_COLUMNS: &str =
    "score, complete_transaction, categories, custom, review_seconds";

async fn custom_field_kinds(tx: &mut Tx) -> Result<Vec<CustomField>> {
    tx.rows(
        "read custom fields",
        "custom_fields",
        "SELECT name, kind FROM custom_fields ORDER BY name",
        &[],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(CustomField {
            name: row.text("name")?,
            kind: row.parse("kind")?,
        })
    })
    .collect()
}

fn validate_field_name(name: &str) -> Result<()> {
    let valid = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(invalid("name", "1-64 characters of A-Z a-z 0-9 _ . -"));
    }
    Ok(())
}

impl ReviewUpdate {
    /// Applies the change to `review`, checking every value (custom ones against `fields`).
    fn apply(&self, review: &mut Review, fields: &[CustomField]) -> Result<()> {
        if let Some(score) = self.score {
            if score.is_some_and(|s| !(1..=5).contains(&s)) {
                return Err(invalid("score", "1 to 5"));
            }
            review.score = score;
        }
        if let Some(complete) = self.complete {
            review.complete = complete;
        }
        if let Some(seconds) = self.review_seconds {
            if seconds.is_some_and(|s| s < 0) {
                return Err(invalid("review_seconds", "not negative"));
            }
            review.review_seconds = seconds;
        }
        if let Some(categories) = &self.categories {
            let mut kept: Vec<String> = Vec::with_capacity(categories.len());
            for category in categories {
                let category = category.trim();
                if category.is_empty()
                    || category.chars().count() > MAX_CATEGORY
                    || category.chars().any(char::is_control)
                {
                    return Err(invalid(
                        "categories",
                        format!("each 1 to {MAX_CATEGORY} characters, no control characters"),
                    ));
                }
                if !kept.iter().any(|k| k == category) {
                    kept.push(category.to_owned());
                }
            }
            if kept.len() > MAX_CATEGORIES {
                return Err(invalid("categories", format!("at most {MAX_CATEGORIES}")));
            }
            review.categories = kept;
        }
        if let Some(custom) = &self.custom {
            for (name, value) in custom {
                if value.is_null() {
                    review.custom.remove(name);
                    continue;
                }
                let Some(field) = fields.iter().find(|f| f.name == *name) else {
                    return Err(Error::UnknownCustomField { name: name.clone() });
                };
                if !field.kind.accepts(value) {
                    return Err(invalid(
                        "custom",
                        format!("{name} holds a {} value, not {value}", field.kind),
                    ));
                }
                review.custom.insert(name.clone(), value.clone());
            }
        }
        Ok(())
    }
}

impl Catalog {
    /// Adds a note to a recording (live or ended). Unknown or out of scope:
    /// [`Error::NotFound`]; a tombstone: [`Error::Deleted`]. Audited (`annotate`, with the
    /// `reason` the request gave).
    pub async fn annotate(
        &self,
        scope: &Scope,
        recording_id: &str,
        note: &NewAnnotation,
        reason: Option<&str>,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<Annotation> {
        if note.text.trim().is_empty() || note.text.chars().count() > MAX_ANNOTATION {
            return Err(invalid(
                "text",
                format!("1 to {MAX_ANNOTATION} characters, not only spaces"),
            ));
        }
        if note.offset_ms.is_some_and(|ms| ms < 0) {
            return Err(invalid("offset_ms", "not negative"));
        }
        let mut tx = self.pool.begin().await?;
        let recording = lock_recording(&mut tx, scope, recording_id).await?;
        if recording.deleted {
            return Err(Error::Deleted {
                id: recording_id.to_owned(),
            });
        }
        let id = uuid::Uuid::new_v4().to_string();
        tx.run(
            "add annotation",
            "INSERT INTO annotations (id, recording_id, body, offset_ms, author, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                Arg::Text(&id),
                Arg::Text(recording_id),
                Arg::Text(&note.text),
                Arg::OptInt(note.offset_ms),
                Arg::Text(&by.user),
                Arg::Int(to_unix_ms(at)),
            ],
        )
        .await?;
        audit_recording(
            &mut tx,
            by,
            at,
            AuditAction::Annotate,
            recording_id,
            recording.tenant.as_deref(),
            reason,
            Some(format!("annotation {id}")),
        )
        .await?;
        let annotation = tx
            .rows(
                "read annotation",
                "annotations",
                &format!("SELECT {ANNOTATION_COLUMNS} FROM annotations WHERE id = $1"),
                &[Arg::Text(&id)],
            )
            .await?
            .first()
            .map(annotation_from_row)
            .transpose()?
            .ok_or_else(|| Error::NotFound {
                id: recording_id.to_owned(),
            })?;
        tx.finish("commit annotation").await?;
        Ok(annotation)
    }

    /// Changes part of a recording's review (see [`ReviewUpdate`]) and returns the whole of
    /// it. A value out of range is [`Error::InvalidInput`], an undefined custom field
    /// [`Error::UnknownCustomField`]; nothing changes then. Audited (`update`, the change as
    /// its detail).
    pub async fn update_review(
        &self,
        scope: &Scope,
        recording_id: &str,
        update: &ReviewUpdate,
        reason: Option<&str>,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<Review> {
        let mut tx = self.pool.begin().await?;
        let recording = lock_recording(&mut tx, scope, recording_id).await?;
        if recording.deleted {
            return Err(Error::Deleted {
                id: recording_id.to_owned(),
            });
        }
        let mut review = tx
            .rows(
                "read review",
                "recordings",
                &format!("SELECT {REVIEW_COLUMNS} FROM recordings WHERE id = $1"),
                &[Arg::Text(recording_id)],
            )
            .await?
            .first()
            .map(review_from_row)
            .transpose()?
            .ok_or_else(|| Error::NotFound {
                id: recording_id.to_owned(),
            })?;
        let fields = custom_field_kinds(&mut tx).await?;
        update.apply(&mut review, &fields)?;
        let categories =
            serde_json::to_string(&review.categories).expect("strings always serialize");
        let custom = serde_json::to_string(&review.custom).expect("JSON values always serialize");
        tx.run(
            "update review",
            "UPDATE recordings SET score = $2, complete_transaction = $3, categories = $4, \
             custom = $5, review_seconds = $6 WHERE id = $1",
            &[
                Arg::Text(recording_id),
                Arg::OptInt(review.score),
                Arg::OptInt(review.complete.map(i64::from)),
                Arg::Text(&categories),
                Arg::Text(&custom),
                Arg::OptInt(review.review_seconds),
            ],
        )
        .await?;
        let detail = serde_json::to_string(update).expect("a review update always serializes");
        audit_recording(
            &mut tx,
            by,
            at,
            AuditAction::Update,
            recording_id,
            recording.tenant.as_deref(),
            reason,
            Some(detail),
        )
        .await?;
        tx.finish("commit review").await?;
        Ok(review)
    }

    /// The custom data fields, by name.
    pub async fn custom_fields(&self) -> Result<Vec<CustomField>> {
        let mut tx = self.pool.begin_read().await?;
        let fields = custom_field_kinds(&mut tx).await?;
        tx.finish("end read").await?;
        Ok(fields)
    }

    /// Defines a custom data field. Defining it again with the same kind changes nothing; with
    /// another kind it is [`Error::InvalidInput`] (values stored under the old kind would no
    /// longer fit). Audited (`fields`).
    pub async fn define_custom_field(
        &self,
        field: &CustomField,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<()> {
        validate_field_name(&field.name)?;
        let mut tx = self.pool.begin().await?;
        let inserted = tx
            .run(
                "define custom field",
                "INSERT INTO custom_fields (name, kind, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
                &[
                    Arg::Text(&field.name),
                    Arg::Text(field.kind.as_str()),
                    Arg::Int(to_unix_ms(at)),
                ],
            )
            .await?;
        if inserted == 0 {
            let existing = custom_field_kinds(&mut tx)
                .await?
                .into_iter()
                .find(|f| f.name == field.name);
            return match existing {
                Some(existing) if existing.kind == field.kind => tx.finish("end read").await,
                Some(existing) => Err(invalid(
                    "kind",
                    format!("{} is already defined as {}", field.name, existing.kind),
                )),
                None => Err(Error::UnknownCustomField {
                    name: field.name.clone(),
                }),
            };
        }
        audit_fields(
            &mut tx,
            by,
            at,
            format!("defined {} as {}", field.name, field.kind),
        )
        .await?;
        tx.finish("commit custom field").await
    }

    /// Removes a custom field's definition (values already stored stay in the recordings'
    /// `custom`, but no new value can be set). Unknown: [`Error::UnknownCustomField`].
    /// Audited (`fields`).
    pub async fn remove_custom_field(
        &self,
        name: &str,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let removed = tx
            .run(
                "remove custom field",
                "DELETE FROM custom_fields WHERE name = $1",
                &[Arg::Text(name)],
            )
            .await?;
        if removed == 0 {
            return Err(Error::UnknownCustomField {
                name: name.to_owned(),
            });
        }
        audit_fields(&mut tx, by, at, format!("removed {name}")).await?;
        tx.finish("commit custom field removal").await
    }
}

async fn audit_fields(tx: &mut Tx, by: &Actor, at: OffsetDateTime, detail: String) -> Result<()> {
    let entry = NewAuditEntry {
        at,
        actor: by.clone(),
        action: AuditAction::Fields,
        recording_id: None,
        reason: None,
        detail: Some(detail),
        tenant: None,
    };
    append(tx, &entry, None).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
