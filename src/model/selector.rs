//! Version selectors (`current`, `previous`, `~N`, or an S3 version id) and the listing model
//! they resolve against. Pure: resolution takes the listing, newest first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An S3 object version id. Validated on the way in, so one can never carry a path separator
/// or a shell metacharacter into a file name, a log line or a child process.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub(crate) struct VersionId(String);

impl TryFrom<String> for VersionId {
    type Error = SelectorError;

    fn try_from(s: String) -> Result<VersionId, SelectorError> {
        VersionId::parse(&s)
    }
}

impl From<VersionId> for String {
    fn from(id: VersionId) -> String {
        id.0
    }
}

impl VersionId {
    pub(crate) fn parse(s: &str) -> Result<VersionId, SelectorError> {
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

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The id S3 gives objects written while versioning was off.
    pub(crate) fn null() -> VersionId {
        VersionId("null".into())
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A version as journals, reports and history name it: its id and the serial it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VersionRef {
    pub(crate) version_id: VersionId,
    pub(crate) serial: u64,
}

/// One entry of the state object's version listing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObjectVersion {
    pub(crate) version_id: VersionId,
    pub(crate) last_modified: jiff::Timestamp,
    pub(crate) size: u64,
    pub(crate) is_latest: bool,
    pub(crate) delete_marker: bool,
    pub(crate) etag: Option<String>,
}

/// The versions of the state object with what is known about them beyond the listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Listing {
    /// Newest first.
    pub(crate) versions: Vec<ObjectVersion>,
    /// Known-good marks: version -> labels.
    pub(crate) marks: BTreeMap<VersionId, Vec<String>>,
    /// Probable intermediate snapshots of an apply (see `intermediate`).
    pub(crate) intermediate: BTreeSet<VersionId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    Id(VersionId),
    Current,
    /// N versions back from the current one; delete markers and probable intermediate
    /// snapshots are not counted.
    Back(usize),
    /// The newest version marked with this label that is not the current one.
    Marked(String),
}

/// Whether a mark label is acceptable (it becomes part of an S3 tag key).
pub(crate) fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 64
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Selector, SelectorError> {
        match s {
            "current" => Ok(Selector::Current),
            "previous" => Ok(Selector::Back(1)),
            "last-good" => Ok(Selector::Marked("good".into())),
            _ if s.starts_with("last:") => {
                let label = &s["last:".len()..];
                if valid_label(label) {
                    Ok(Selector::Marked(label.to_string()))
                } else {
                    Err(SelectorError::Invalid {
                        input: s.escape_default().to_string(),
                    })
                }
            }
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
            Selector::Marked(label) if label == "good" => f.write_str("last-good"),
            Selector::Marked(label) => write!(f, "last:{label}"),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SelectorError {
    #[error(
        "`{input}` is not a version: use an S3 version id, `current`, `previous`, `~N` (N versions back), `last-good` or `last:LABEL`"
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
        "no version of {location} other than the current one is marked `{label}`; mark one with `tfrollback mark VERSION --label {label}`"
    )]
    NoMark { label: String, location: String },
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
    /// Picks the version this selector names in a listing.
    pub(crate) fn resolve<'a>(
        &self,
        listing: &'a Listing,
        location: &str,
    ) -> Result<&'a ObjectVersion, SelectorError> {
        let versions = &listing.versions;
        let location = location.to_string();
        let latest = versions
            .iter()
            .find(|v| v.is_latest)
            .or_else(|| versions.first())
            .ok_or(SelectorError::Empty {
                location: location.clone(),
            })?;
        let earlier = || {
            versions
                .iter()
                .skip_while(|v| v.version_id != latest.version_id)
                .skip(1)
                .filter(|v| !v.delete_marker)
        };
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
                let candidates: Vec<_> = earlier()
                    .filter(|v| !listing.intermediate.contains(&v.version_id))
                    .collect();
                candidates
                    .get(n - 1)
                    .copied()
                    .ok_or(SelectorError::TooFarBack {
                        selector: self.to_string(),
                        available: candidates.len(),
                        location,
                    })
            }
            Selector::Marked(label) => earlier()
                .find(|v| {
                    listing
                        .marks
                        .get(&v.version_id)
                        .is_some_and(|l| l.contains(label))
                })
                .ok_or(SelectorError::NoMark {
                    label: label.clone(),
                    location,
                }),
        }
    }

    /// How many of the newest versions resolution looks at: the window in which intermediate
    /// snapshots must be known.
    pub(crate) fn depth(&self) -> usize {
        match self {
            Selector::Back(n) => 2 * n + 8,
            _ => 0,
        }
    }
}

/// The current version: the latest entry, unless the state was deleted.
pub(crate) fn current(listing: &Listing, location: &str) -> Result<ObjectVersion, SelectorError> {
    Selector::Current.resolve(listing, location).cloned()
}

/// Versions that are probably intermediate snapshots persisted during an apply rather than its
/// result. terraform persists the state at the first resource update 20 s or more after the
/// apply's first one (and so on for long applies), then at the end: an intermediate snapshot
/// has the same lineage and the serial before the next one, carries no check results where
/// the apply's result does (terraform records them only at the end), and already holds the new
/// output values; it can precede the result by many seconds, as long as the rest of the apply
/// takes. So a pair is flagged when the newer carries checks and the older none, written within
/// a few seconds, or up to `APPLY_HOURS` apart when their outputs are equal too; a run of such
/// snapshots before a flagged one is flagged with it. For configurations with nothing to check,
/// the weaker sign is the same outputs, written within a second, with no resource lost (a
/// `state rm` loses one). A wrong flag would make `previous` skip a real state, so doubtful
/// cases are not flagged: a pair that needs resource counts nobody has read is not flagged
/// (see `counts_needed`).
pub(crate) fn intermediate(
    versions: &[ObjectVersion],
    summaries: &BTreeMap<VersionId, crate::model::state::StateSummary>,
) -> BTreeSet<VersionId> {
    pairs(versions, summaries)
        .filter(|(_, _, verdict)| *verdict == Verdict::Flag)
        .map(|(_, older, _)| older.version_id.clone())
        .collect()
}

/// The versions whose resource count would decide a flag of `intermediate`: pairs that look
/// like one apply with nothing to check, read only by their heads. Rare (two writes within a
/// second with the same outputs), so reading these bodies whole costs little.
pub(crate) fn counts_needed(
    versions: &[ObjectVersion],
    summaries: &BTreeMap<VersionId, crate::model::state::StateSummary>,
) -> BTreeSet<VersionId> {
    pairs(versions, summaries)
        .filter(|(_, _, verdict)| *verdict == Verdict::NeedCounts)
        .flat_map(|(newer, older, _)| [newer.version_id.clone(), older.version_id.clone()])
        .filter(|id| summaries.get(id).is_some_and(|s| s.resources.is_none()))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Flag,
    Keep,
    NeedCounts,
}

/// How long one apply may run, for the intermediate-snapshot rule.
const APPLY_HOURS: i64 = 6;

/// Each pair of neighbouring states (newer, older) with what the rule says of the older one,
/// newest first.
fn pairs<'a>(
    versions: &'a [ObjectVersion],
    summaries: &'a BTreeMap<VersionId, crate::model::state::StateSummary>,
) -> impl Iterator<Item = (&'a ObjectVersion, &'a ObjectVersion, Verdict)> + 'a {
    const WITHIN: i64 = 5;
    let states: Vec<&ObjectVersion> = versions.iter().filter(|v| !v.delete_marker).collect();
    let mut verdicts = Vec::new();
    // Whether the newer of the pair is itself an intermediate snapshot of an apply whose result
    // carries checks (a run of them); the weaker sign never starts a run.
    let mut newer_flagged = false;
    for pair in states.windows(2) {
        let (newer, older) = (pair[0], pair[1]);
        let (Some(n), Some(o)) = (
            summaries.get(&newer.version_id),
            summaries.get(&older.version_id),
        ) else {
            newer_flagged = false;
            continue;
        };
        let gap = newer.last_modified.as_second() - older.last_modified.as_second();
        let next = n.lineage == o.lineage && n.serial == o.serial + 1 && gap >= 0;
        let same_outputs = n.outputs == o.outputs;
        let checked_run = next
            && !o.checks
            && (n.checks || newer_flagged)
            && (gap <= WITHIN || same_outputs && gap <= APPLY_HOURS * 3600);
        let verdict = if !next || o.checks {
            Verdict::Keep
        } else if checked_run {
            Verdict::Flag
        } else if !n.checks && gap <= 1 && same_outputs {
            match (n.resources, o.resources) {
                (Some(a), Some(b)) if a >= b => Verdict::Flag,
                (Some(_), Some(_)) => Verdict::Keep,
                _ => Verdict::NeedCounts,
            }
        } else {
            Verdict::Keep
        };
        newer_flagged = checked_run;
        verdicts.push((newer, older, verdict));
    }
    verdicts.into_iter()
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
        let listing = Listing {
            versions: listing(),
            ..Listing::default()
        };
        let sel: Selector = s.parse()?;
        sel.resolve(&listing, "s3://b/k")
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
        let listing = Listing {
            versions: vec![version("dm", true, true), version("v1", false, false)],
            ..Listing::default()
        };
        assert!(matches!(
            Selector::Current.resolve(&listing, "x"),
            Err(SelectorError::CurrentDeleted { .. })
        ));
        let previous = Selector::Back(1).resolve(&listing, "x").unwrap();
        assert_eq!(previous.version_id.as_str(), "v1");
    }

    #[test]
    fn marks_and_intermediate_snapshots_shape_the_selectors() {
        let id = |s: &str| VersionId::parse(s).unwrap();
        let mut listing = Listing {
            versions: listing(),
            ..Listing::default()
        };
        listing.intermediate.insert(id("v4"));
        listing.marks.insert(id("v5"), vec!["good".into()]);
        listing
            .marks
            .insert(id("v2"), vec!["good".into(), "release".into()]);
        listing.marks.insert(id("v1"), vec!["good".into()]);
        let pick = |s: &str| {
            s.parse::<Selector>()
                .unwrap()
                .resolve(&listing, "x")
                .map(|v| v.version_id.to_string())
        };
        assert_eq!(pick("previous").unwrap(), "v2", "v4 is intermediate");
        assert_eq!(
            pick("last-good").unwrap(),
            "v2",
            "the current version does not count"
        );
        assert_eq!(pick("last:release").unwrap(), "v2");
        assert!(matches!(
            pick("last:none"),
            Err(SelectorError::NoMark { .. })
        ));
        assert!("last:bad label".parse::<Selector>().is_err());
    }

    fn summary(serial: u64, slot: &str, checks: bool) -> crate::model::state::StateSummary {
        crate::model::state::StateSummary {
            terraform_version: "1.11.4".into(),
            serial,
            lineage: "l".into(),
            resources: Some(3),
            outputs: [(
                "slot".to_string(),
                crate::model::state::OutputSummary {
                    sensitive: false,
                    value: Some(serde_json::json!(slot)),
                },
            )]
            .into_iter()
            .collect(),
            checks,
        }
    }

    fn flagged(
        versions: &[(&str, i64)],
        summaries: Vec<(&str, crate::model::state::StateSummary)>,
    ) -> Vec<String> {
        let versions: Vec<ObjectVersion> = versions
            .iter()
            .map(|(id, secs)| ObjectVersion {
                last_modified: jiff::Timestamp::from_second(*secs).unwrap(),
                ..version(id, false, false)
            })
            .collect();
        let summaries: BTreeMap<_, _> = summaries
            .into_iter()
            .map(|(id, s)| (VersionId::parse(id).unwrap(), s))
            .collect();
        intermediate(&versions, &summaries)
            .iter()
            .map(std::string::ToString::to_string)
            .collect()
    }

    #[test]
    fn intermediate_snapshots_are_told_from_separate_applies() {
        let found = flagged(
            &[("final", 100), ("mid", 100), ("deploy1", 99), ("old", 10)],
            vec![
                ("final", summary(4, "green", true)),
                ("mid", summary(3, "green", false)),
                ("deploy1", summary(2, "blue", true)),
                ("old", summary(1, "blue", true)),
            ],
        );
        assert_eq!(
            found,
            ["mid"],
            "deploy1 differs from mid; old is 89 s older"
        );
        // Nothing to check in the configuration: same outputs in the same second.
        let found = flagged(
            &[("final", 50), ("mid", 50)],
            vec![
                ("final", summary(8, "green", false)),
                ("mid", summary(7, "green", false)),
            ],
        );
        assert_eq!(found, ["mid"]);
    }

    #[test]
    fn a_long_applys_snapshots_are_flagged_however_long_the_rest_of_it_took() {
        // terraform's real pattern: snapshots 20 s into the apply and after, the result seconds
        // or minutes later, all with the new outputs and only the result with check results.
        let found = flagged(
            &[
                ("final", 1000),
                ("mid2", 992),
                ("mid1", 970),
                ("deploy1", 900),
            ],
            vec![
                ("final", summary(5, "green", true)),
                ("mid2", summary(4, "green", false)),
                ("mid1", summary(3, "green", false)),
                ("deploy1", summary(2, "blue", true)),
            ],
        );
        assert_eq!(
            found,
            ["mid1", "mid2"],
            "the whole run, 8 s and 30 s before the result"
        );
        // Days later, with other outputs: a separate apply, never a snapshot.
        let found = flagged(
            &[("later", 900_000), ("earlier", 10)],
            vec![
                ("later", summary(2, "green", true)),
                ("earlier", summary(1, "blue", false)),
            ],
        );
        assert!(found.is_empty());
        // Equal outputs but longer apart than any apply runs.
        let found = flagged(
            &[("later", 900_000), ("earlier", 10)],
            vec![
                ("later", summary(2, "green", true)),
                ("earlier", summary(1, "green", false)),
            ],
        );
        assert!(found.is_empty());
    }

    #[test]
    fn a_state_rm_right_after_an_apply_is_not_taken_for_a_snapshot() {
        let removed = crate::model::state::StateSummary {
            resources: Some(2),
            ..summary(5, "green", true)
        };
        let found = flagged(
            &[("rm", 100), ("applied", 100)],
            vec![
                ("rm", removed.clone()),
                ("applied", summary(4, "green", true)),
            ],
        );
        assert!(found.is_empty());
        let unchecked = crate::model::state::StateSummary {
            checks: false,
            ..removed
        };
        let found = flagged(
            &[("rm", 100), ("applied", 100)],
            vec![("rm", unchecked), ("applied", summary(4, "green", false))],
        );
        assert!(found.is_empty());
    }

    #[test]
    fn head_only_pairs_with_nothing_to_check_ask_for_counts_instead_of_guessing() {
        let head_only = |serial| crate::model::state::StateSummary {
            resources: None,
            ..summary(serial, "green", false)
        };
        let versions: Vec<ObjectVersion> = [("final", 50), ("mid", 50), ("old", 10)]
            .iter()
            .map(|(id, secs)| ObjectVersion {
                last_modified: jiff::Timestamp::from_second(*secs).unwrap(),
                ..version(id, false, false)
            })
            .collect();
        let mut summaries: BTreeMap<VersionId, crate::model::state::StateSummary> = [
            ("final", head_only(8)),
            ("mid", head_only(7)),
            ("old", head_only(6)),
        ]
        .into_iter()
        .map(|(id, s)| (VersionId::parse(id).unwrap(), s))
        .collect();
        // Without counts the weak sign is doubtful: not flagged, and the two counts are asked for.
        assert!(intermediate(&versions, &summaries).is_empty());
        let needed: Vec<String> = counts_needed(&versions, &summaries)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            needed,
            ["final", "mid"],
            "old is 40 s older: no count needed"
        );
        // Once counted, the rule decides as with whole bodies.
        for id in ["final", "mid"] {
            summaries
                .get_mut(&VersionId::parse(id).unwrap())
                .unwrap()
                .resources = Some(3);
        }
        assert_eq!(intermediate(&versions, &summaries).len(), 1);
        assert!(counts_needed(&versions, &summaries).is_empty());
        // Check results decide without any count.
        let checked: BTreeMap<VersionId, crate::model::state::StateSummary> = [
            (
                "final",
                crate::model::state::StateSummary {
                    checks: true,
                    ..head_only(8)
                },
            ),
            ("mid", head_only(7)),
        ]
        .into_iter()
        .map(|(id, s)| (VersionId::parse(id).unwrap(), s))
        .collect();
        assert_eq!(intermediate(&versions[..2], &checked).len(), 1);
        assert!(counts_needed(&versions[..2], &checked).is_empty());
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

    proptest::proptest! {
        /// Any input either parses into a selector whose id is only safe characters, or is
        /// refused; nothing panics.
        #[test]
        fn selector_parsing_is_total_and_ids_stay_safe(input in "\\PC{0,80}") {
            match input.parse::<Selector>() {
                Ok(Selector::Id(id)) => {
                    proptest::prop_assert_eq!(id.as_str(), input.as_str());
                    proptest::prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b"._-=+".contains(&b)));
                }
                Ok(Selector::Marked(label)) => proptest::prop_assert!(valid_label(&label)),
                Ok(_) | Err(_) => {}
            }
        }

        /// Every well-formed id means itself.
        #[test]
        fn well_formed_ids_round_trip(id in "[A-Za-z0-9._=+-]{1,64}") {
            let reserved = ["current", "previous", "last-good"].contains(&id.as_str());
            if !reserved && !id.starts_with('~') {
                let parsed: Selector = id.parse().unwrap();
                proptest::prop_assert_eq!(parsed.to_string(), id);
            }
        }
    }
}
