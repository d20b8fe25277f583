//! Version selectors (`current`, `previous`, `~N`, or an S3 version id) and the listing model
//! they resolve against. Pure: resolution takes the listing, newest first.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An S3 object version id. Validated on the way in, so one can never carry a path separator
/// or a shell metacharacter into a file name, a log line or a child process.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionId(String);

impl VersionId {
    pub fn parse(s: &str) -> Result<VersionId, SelectorError> {
        let valid = !s.is_empty()
            && s.len() <= 1024
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'=' | b'+')
            });
        if valid {
            Ok(VersionId(s.to_string()))
        } else {
            Err(SelectorError::Invalid {
                input: s.escape_default().to_string(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id S3 gives objects written while versioning was off.
    pub fn null() -> VersionId {
        VersionId("null".into())
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One entry of the state object's version listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectVersion {
    pub version_id: VersionId,
    pub last_modified: jiff::Timestamp,
    pub size: u64,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub etag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Id(VersionId),
    Current,
    /// N versions back from the current one; delete markers are not counted.
    Back(usize),
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Selector, SelectorError> {
        match s {
            "current" => Ok(Selector::Current),
            "previous" => Ok(Selector::Back(1)),
            _ => match s.strip_prefix('~') {
                Some(n) => match n.parse::<usize>() {
                    Ok(0) => Ok(Selector::Current),
                    Ok(n) => Ok(Selector::Back(n)),
                    Err(_) => Err(SelectorError::Invalid {
                        input: s.escape_default().to_string(),
                    }),
                },
                None => VersionId::parse(s).map(Selector::Id),
            },
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Id(id) => id.fmt(f),
            Selector::Current => f.write_str("current"),
            Selector::Back(1) => f.write_str("previous"),
            Selector::Back(n) => write!(f, "~{n}"),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error(
        "`{input}` is not a version: use an S3 version id, `current`, `previous` or `~N` (N versions back)"
    )]
    Invalid { input: String },
    #[error("no version {id} of {location}; run `tfrollback list` to see the versions")]
    Unknown { id: VersionId, location: String },
    #[error("{location} has no versions; is this the right bucket, key and workspace?")]
    Empty { location: String },
    #[error(
        "the current version of {location} is a delete marker (the state was deleted); name a version id from `tfrollback list`"
    )]
    CurrentDeleted { location: String },
    #[error(
        "{location} has only {available} earlier version(s), so `{selector}` does not exist; run `tfrollback list`"
    )]
    TooFarBack {
        selector: String,
        available: usize,
        location: String,
    },
}

impl Selector {
    /// Picks the version this selector names in a listing ordered newest first.
    pub fn resolve<'a>(
        &self,
        versions: &'a [ObjectVersion],
        location: &str,
    ) -> Result<&'a ObjectVersion, SelectorError> {
        let location = location.to_string();
        let latest = versions
            .iter()
            .find(|v| v.is_latest)
            .or_else(|| versions.first())
            .ok_or(SelectorError::Empty {
                location: location.clone(),
            })?;
        match self {
            Selector::Id(id) => {
                versions
                    .iter()
                    .find(|v| &v.version_id == id)
                    .ok_or(SelectorError::Unknown {
                        id: id.clone(),
                        location,
                    })
            }
            Selector::Current if latest.delete_marker => {
                Err(SelectorError::CurrentDeleted { location })
            }
            Selector::Current => Ok(latest),
            Selector::Back(n) => {
                let earlier: Vec<_> = versions
                    .iter()
                    .skip_while(|v| v.version_id != latest.version_id)
                    .skip(1)
                    .filter(|v| !v.delete_marker)
                    .collect();
                earlier
                    .get(n - 1)
                    .copied()
                    .ok_or(SelectorError::TooFarBack {
                        selector: self.to_string(),
                        available: earlier.len(),
                        location,
                    })
            }
        }
    }
}

/// The current version: the latest entry, unless the state was deleted.
pub fn current(versions: &[ObjectVersion], location: &str) -> Result<ObjectVersion, SelectorError> {
    Selector::Current.resolve(versions, location).cloned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn version(id: &str, latest: bool, marker: bool) -> ObjectVersion {
        ObjectVersion {
            version_id: VersionId::parse(id).unwrap(),
            last_modified: jiff::Timestamp::UNIX_EPOCH,
            size: 10,
            is_latest: latest,
            delete_marker: marker,
            etag: None,
        }
    }

    fn listing() -> Vec<ObjectVersion> {
        vec![
            version("v5", true, false),
            version("v4", false, false),
            version("dm3", false, true),
            version("v2", false, false),
            version("v1", false, false),
        ]
    }

    fn pick(s: &str) -> Result<String, SelectorError> {
        let versions = listing();
        let sel: Selector = s.parse()?;
        sel.resolve(&versions, "s3://b/k")
            .map(|v| v.version_id.to_string())
    }

    #[test]
    fn selectors_resolve_newest_first_skipping_delete_markers() {
        assert_eq!(pick("current").unwrap(), "v5");
        assert_eq!(pick("~0").unwrap(), "v5");
        assert_eq!(pick("previous").unwrap(), "v4");
        assert_eq!(pick("~2").unwrap(), "v2");
        assert_eq!(pick("~3").unwrap(), "v1");
        assert_eq!(pick("dm3").unwrap(), "dm3");
        assert_eq!(
            pick("~4"),
            Err(SelectorError::TooFarBack {
                selector: "~4".into(),
                available: 3,
                location: "s3://b/k".into()
            })
        );
        assert!(matches!(pick("nope"), Err(SelectorError::Unknown { .. })));
    }

    #[test]
    fn a_deleted_state_has_no_current_but_has_a_previous() {
        let versions = vec![version("dm", true, true), version("v1", false, false)];
        assert!(matches!(
            Selector::Current.resolve(&versions, "x"),
            Err(SelectorError::CurrentDeleted { .. })
        ));
        assert_eq!(
            Selector::Back(1)
                .resolve(&versions, "x")
                .unwrap()
                .version_id
                .as_str(),
            "v1"
        );
    }

    #[test]
    fn hostile_ids_are_refused() {
        for bad in [
            "../etc/passwd",
            "a;rm -rf /",
            "$(id)",
            "a b",
            "`x`",
            "",
            "~x",
            "~-1",
        ] {
            assert!(
                matches!(bad.parse::<Selector>(), Err(SelectorError::Invalid { .. })),
                "{bad}"
            );
        }
        assert!(
            "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY.Ab_c-d="
                .parse::<Selector>()
                .is_ok()
        );
        assert!("null".parse::<Selector>().is_ok());
    }
}
