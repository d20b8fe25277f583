//! S3 lifecycle rules as far as a rollback cares: which versions of the state object the
//! bucket's rules delete, and from when, and whether a rule expires the state itself. Pure:
//! callers hand in the rules, the version listing and the tags they know.
//!
//! What S3 does, and so what is computed here (docs/commands/doctor.md cites the sources):
//! - `NoncurrentVersionExpiration` deletes a version for good once it has been noncurrent for
//!   `NoncurrentDays`, counted from when it *became* noncurrent (the `LastModified` of the next
//!   newer version or delete marker, not its own) and rounded up to the next midnight UTC.
//!   With `NewerNoncurrentVersions` N, the newest N noncurrent versions are kept however old.
//! - `Expiration` (`Days` after the current version was written, or a `Date`) puts a delete
//!   marker on the current version of a versioned object: the state disappears.
//! - A rule applies to the versions its `Filter` matches (prefix, tags, object size; an `And`
//!   of them) and only while its `Status` is `Enabled`. When several rules apply, the earliest
//!   deletion wins (S3 honours the shorter expiration).
//! - `ExpiredObjectDeleteMarker`, transitions and `AbortIncompleteMultipartUpload` remove no
//!   version that holds a state and are ignored.
//! - Delete markers are counted as noncurrent versions for `NewerNoncurrentVersions`: S3's
//!   documentation does not say, and counting them can only predict a deletion S3 might not
//!   make, never miss one.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::model::selector::{ObjectVersion, VersionId};

const DAY: i64 = 86_400;

/// Which objects a rule applies to. Empty fields match everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Filter {
    /// The key prefix (`Filter/Prefix`, `Filter/And/Prefix` or the old top-level `Prefix`).
    pub(crate) prefix: String,
    /// Every one of these tags must be on the version, with this value.
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) size_greater_than: Option<u64>,
    pub(crate) size_less_than: Option<u64>,
}

impl Filter {
    /// Whether the rule reaches the key at all (its other conditions depend on each version).
    pub(crate) fn covers_key(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
    }

    fn matches(&self, key: &str, size: u64, tags: &[(String, String)]) -> bool {
        self.covers_key(key)
            && self.tags.iter().all(|t| tags.contains(t))
            && self.size_greater_than.is_none_or(|min| size > min)
            && self.size_less_than.is_none_or(|max| size < max)
    }
}

/// One lifecycle rule, reduced to what can delete a version of the state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Rule {
    pub(crate) id: Option<String>,
    pub(crate) enabled: bool,
    pub(crate) filter: Filter,
    /// `Expiration/Days`: the current version gets a delete marker this long after it was written.
    pub(crate) expiration_days: Option<u32>,
    /// `Expiration/Date`: the current version gets a delete marker from then on.
    pub(crate) expiration_date: Option<Timestamp>,
    /// `NoncurrentVersionExpiration/NoncurrentDays`.
    pub(crate) noncurrent_days: Option<u32>,
    /// `NoncurrentVersionExpiration/NewerNoncurrentVersions`.
    pub(crate) newer_noncurrent: Option<u32>,
}

impl Rule {
    /// `rule "expire-old"`, or `a rule without an ID`.
    pub(crate) fn name(&self) -> String {
        match self.id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => format!("rule \"{id}\""),
            None => "a rule without an ID".into(),
        }
    }

    /// Whether the rule deletes noncurrent versions at all.
    pub(crate) fn deletes_noncurrent(&self) -> bool {
        self.noncurrent_days.is_some() || self.newer_noncurrent.is_some()
    }

    /// Whether the rule puts a delete marker on current versions.
    pub(crate) fn expires_current(&self) -> bool {
        self.expiration_days.is_some() || self.expiration_date.is_some()
    }

    /// What it does to noncurrent versions, in words: `deletes noncurrent versions 30 days
    /// after they are replaced, keeping the newest 5`.
    pub(crate) fn describe_noncurrent(&self) -> String {
        let after = match self.noncurrent_days {
            Some(1) => " 1 day after they are replaced".to_string(),
            Some(days) => format!(" {days} days after they are replaced"),
            None => " as soon as they are replaced".to_string(),
        };
        let keeping = match self.newer_noncurrent {
            Some(1) => ", keeping the newest one".to_string(),
            Some(n) => format!(", keeping the newest {n}"),
            None => String::new(),
        };
        format!("deletes noncurrent versions{after}{keeping}")
    }

    /// What restricts the rule beyond the key prefix, in words (empty when nothing does).
    pub(crate) fn describe_filter(&self) -> String {
        let mut parts = vec![];
        if !self.filter.prefix.is_empty() {
            parts.push(format!("prefix \"{}\"", self.filter.prefix));
        }
        for (k, v) in &self.filter.tags {
            parts.push(format!("tag {k}={v}"));
        }
        if let Some(min) = self.filter.size_greater_than {
            parts.push(format!("objects larger than {min} bytes"));
        }
        if let Some(max) = self.filter.size_less_than {
            parts.push(format!("objects smaller than {max} bytes"));
        }
        parts.join(", ")
    }
}

/// `t` rounded up to the next midnight UTC (unchanged when it is one), as S3 rounds the
/// moment a lifecycle action becomes due.
pub(crate) fn next_midnight(t: Timestamp) -> Timestamp {
    let secs = t.as_second();
    let exact = secs.rem_euclid(DAY) == 0 && t.subsec_nanosecond() == 0;
    let day = if exact {
        secs
    } else {
        (secs.div_euclid(DAY) + 1) * DAY
    };
    Timestamp::from_second(day).unwrap_or(t)
}

fn plus_days(t: Timestamp, days: u32) -> Timestamp {
    Timestamp::from_second(t.as_second().saturating_add(i64::from(days) * DAY)).unwrap_or(t)
}

/// What the rules do to one version, as things stand (no further writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fate {
    /// No enabled rule deletes it: the current version, or no rule applies.
    Kept,
    /// S3 may delete it for good from `from` on (a moment already past: at any time now).
    Deleted { from: Timestamp, rule: String },
    /// Kept by `NewerNoncurrentVersions` until `writes` more versions are written; deleted
    /// then (or once old enough, whichever is later) by `rule`.
    KeptForWrites { writes: u32, rule: String },
}

impl Fate {
    /// The stricter of two fates: an earlier deletion, else the fewer writes.
    fn stricter(self, other: Fate) -> Fate {
        match (&self, &other) {
            (Fate::Deleted { from: a, .. }, Fate::Deleted { from: b, .. }) => {
                if b < a {
                    other
                } else {
                    self
                }
            }
            (Fate::Deleted { .. }, _) | (_, Fate::Kept) => self,
            (_, Fate::Deleted { .. }) | (Fate::Kept, _) => other,
            (Fate::KeptForWrites { writes: a, .. }, Fate::KeptForWrites { writes: b, .. }) => {
                if b < a { other } else { self }
            }
        }
    }

    /// Whether the version may be gone at `now`.
    pub(crate) fn deleted_by(&self, now: Timestamp) -> bool {
        matches!(self, Fate::Deleted { from, .. } if *from <= now)
    }
}

/// One entry of the listing with its fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VersionFate {
    pub(crate) version_id: VersionId,
    pub(crate) last_modified: Timestamp,
    pub(crate) delete_marker: bool,
    /// When a newer version or delete marker replaced it (None: the current version).
    pub(crate) noncurrent_since: Option<Timestamp>,
    pub(crate) fate: Fate,
}

/// The fate of every entry of `versions` (newest first, delete markers included, the first
/// one current) under the enabled rules that match it. `tags` holds the tags known per version;
/// a version absent from it is taken to have none (terraform writes states without tags).
pub(crate) fn fates(
    rules: &[Rule],
    key: &str,
    versions: &[ObjectVersion],
    tags: &BTreeMap<VersionId, Vec<(String, String)>>,
) -> Vec<VersionFate> {
    let none = vec![];
    versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let noncurrent_since = i.checked_sub(1).map(|newer| versions[newer].last_modified);
            let mut fate = Fate::Kept;
            if let Some(since) = noncurrent_since {
                // Noncurrent entries newer than this one: entries 1..i.
                let newer = u32::try_from(i - 1).unwrap_or(u32::MAX);
                let version_tags = tags.get(&v.version_id).unwrap_or(&none);
                for rule in rules.iter().filter(|r| r.enabled && r.deletes_noncurrent()) {
                    if !rule.filter.matches(key, v.size, version_tags) {
                        continue;
                    }
                    let due = next_midnight(plus_days(since, rule.noncurrent_days.unwrap_or(0)));
                    let by_rule = match rule.newer_noncurrent {
                        Some(keep) if newer < keep => Fate::KeptForWrites {
                            writes: keep - newer,
                            rule: rule.name(),
                        },
                        _ => Fate::Deleted {
                            from: due,
                            rule: rule.name(),
                        },
                    };
                    fate = fate.stricter(by_rule);
                }
            }
            VersionFate {
                version_id: v.version_id.clone(),
                last_modified: v.last_modified,
                delete_marker: v.delete_marker,
                noncurrent_since,
                fate,
            }
        })
        .collect()
}

/// When a rule puts a delete marker on the current state version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CurrentExpiry {
    pub(crate) rule: String,
    pub(crate) from: Timestamp,
}

/// The earliest `Expiration` of the current version `current` (not a delete marker), if a
/// rule has one for it.
pub(crate) fn current_expiry(
    rules: &[Rule],
    key: &str,
    current: &ObjectVersion,
    tags: &BTreeMap<VersionId, Vec<(String, String)>>,
) -> Option<CurrentExpiry> {
    if current.delete_marker {
        return None;
    }
    let none = vec![];
    let current_tags = tags.get(&current.version_id).unwrap_or(&none);
    rules
        .iter()
        .filter(|r| r.enabled && r.expires_current())
        .filter(|r| r.filter.matches(key, current.size, current_tags))
        .flat_map(|r| {
            let by_days = r
                .expiration_days
                .map(|d| next_midnight(plus_days(current.last_modified, d)));
            [by_days, r.expiration_date]
                .into_iter()
                .flatten()
                .map(|from| CurrentExpiry {
                    rule: r.name(),
                    from,
                })
        })
        .min_by_key(|e| e.from)
}

/// How far back a rollback can go, from the fates of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Horizon {
    /// Earlier versions holding a state (delete markers aside).
    pub(crate) earlier: usize,
    /// Of those, the ones S3 may already have deleted or delete at any time.
    pub(crate) deletable_now: usize,
    /// The ones that will become deletable later, as things stand.
    pub(crate) deletable_later: usize,
    /// The oldest earlier version S3 may not delete yet: the furthest a rollback can go now.
    pub(crate) oldest_restorable: Option<VersionFate>,
    /// The previous version (what `previous` names, delete markers aside).
    pub(crate) previous: Option<VersionFate>,
}

pub(crate) fn horizon(fates: &[VersionFate], now: Timestamp) -> Horizon {
    let earlier: Vec<&VersionFate> = fates.iter().skip(1).filter(|f| !f.delete_marker).collect();
    Horizon {
        earlier: earlier.len(),
        deletable_now: earlier.iter().filter(|f| f.fate.deleted_by(now)).count(),
        deletable_later: earlier
            .iter()
            .filter(|f| matches!(f.fate, Fate::Deleted { .. }) && !f.fate.deleted_by(now))
            .count(),
        oldest_restorable: earlier
            .iter()
            .rev()
            .find(|f| !f.fate.deleted_by(now))
            .map(|f| (*f).clone()),
        previous: earlier.first().map(|f| (*f).clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::selector::tests::version;

    const KEY: &str = "app/terraform.tfstate";

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A listing, newest first: (id, written at, delete marker).
    fn listing(entries: &[(&str, &str, bool)]) -> Vec<ObjectVersion> {
        entries
            .iter()
            .enumerate()
            .map(|(i, (id, t, marker))| {
                let mut v = version(id, i == 0, *marker);
                v.last_modified = at(t);
                v.size = if *marker { 0 } else { 5000 };
                v
            })
            .collect()
    }

    fn noncurrent(id: &str, days: Option<u32>, keep: Option<u32>) -> Rule {
        Rule {
            id: Some(id.into()),
            enabled: true,
            noncurrent_days: days,
            newer_noncurrent: keep,
            ..Rule::default()
        }
    }

    fn fate_of<'a>(fates: &'a [VersionFate], id: &str) -> &'a Fate {
        &fates
            .iter()
            .find(|f| f.version_id.as_str() == id)
            .unwrap()
            .fate
    }

    const FOUR: [(&str, &str, bool); 4] = [
        ("v4", "2026-03-20T09:00:00Z", false),
        ("v3", "2026-03-10T15:30:00Z", false),
        ("v2", "2026-03-01T10:30:00Z", false),
        ("v1", "2026-02-01T08:00:00Z", false),
    ];

    #[test]
    fn rounds_up_to_the_next_midnight_utc_as_s3_does() {
        // S3's own example: replaced 1/15 10:30, 3 days: due 1/19 00:00.
        assert_eq!(
            next_midnight(plus_days(at("2014-01-15T10:30:00Z"), 3)),
            at("2014-01-19T00:00:00Z")
        );
        assert_eq!(
            next_midnight(at("2026-03-01T00:00:00Z")),
            at("2026-03-01T00:00:00Z")
        );
        assert_eq!(
            next_midnight(at("2026-03-01T00:00:00.5Z")),
            at("2026-03-02T00:00:00Z")
        );
    }

    #[test]
    fn noncurrent_days_count_from_when_the_next_version_replaced_it() {
        let fates = fates(
            &[noncurrent("30d", Some(30), None)],
            KEY,
            &listing(&FOUR),
            &BTreeMap::new(),
        );
        assert_eq!(fate_of(&fates, "v4"), &Fate::Kept, "the current version");
        // v3 was replaced by v4 on 03-20 09:00: 30 days later, rounded up.
        assert_eq!(
            fate_of(&fates, "v3"),
            &Fate::Deleted {
                from: at("2026-04-20T00:00:00Z"),
                rule: "rule \"30d\"".into()
            }
        );
        // v1, written on 02-01, became noncurrent only on 03-01 (when v2 was written).
        assert_eq!(
            fate_of(&fates, "v1"),
            &Fate::Deleted {
                from: at("2026-04-01T00:00:00Z"),
                rule: "rule \"30d\"".into()
            }
        );
        assert_eq!(fates[3].noncurrent_since, Some(at("2026-03-01T10:30:00Z")));
    }

    #[test]
    fn newer_noncurrent_versions_keeps_the_newest_noncurrent_ones() {
        let fates = fates(
            &[noncurrent("keep2", Some(1), Some(2))],
            KEY,
            &listing(&FOUR),
            &BTreeMap::new(),
        );
        let kept = |writes| Fate::KeptForWrites {
            writes,
            rule: "rule \"keep2\"".into(),
        };
        assert_eq!(fate_of(&fates, "v3"), &kept(2));
        assert_eq!(fate_of(&fates, "v2"), &kept(1));
        assert_eq!(
            fate_of(&fates, "v1"),
            &Fate::Deleted {
                from: at("2026-03-03T00:00:00Z"),
                rule: "rule \"keep2\"".into()
            }
        );
    }

    #[test]
    fn delete_markers_count_as_newer_noncurrent_versions() {
        let entries = [
            ("v3", "2026-03-20T09:00:00Z", false),
            ("dm", "2026-03-15T09:00:00Z", true),
            ("v2", "2026-03-10T09:00:00Z", false),
            ("v1", "2026-03-01T09:00:00Z", false),
        ];
        let fates = fates(
            &[noncurrent("keep1", None, Some(1))],
            KEY,
            &listing(&entries),
            &BTreeMap::new(),
        );
        // The delete marker is the newest noncurrent entry: v2 is not kept.
        assert!(matches!(fate_of(&fates, "v2"), Fate::Deleted { .. }));
        // v2 was replaced by the delete marker, not by v3.
        assert_eq!(fates[2].noncurrent_since, Some(at("2026-03-15T09:00:00Z")));
    }

    #[test]
    fn the_strictest_of_several_rules_wins() {
        let rules = [
            noncurrent("90d", Some(90), None),
            noncurrent("10d-keep3", Some(10), Some(3)),
            noncurrent("60d-keep1", Some(60), Some(1)),
        ];
        let fates = fates(&rules, KEY, &listing(&FOUR), &BTreeMap::new());
        // v3: the 90-day rule deletes it; the other two keep it as one of their newest.
        assert_eq!(
            fate_of(&fates, "v3"),
            &Fate::Deleted {
                from: at("2026-06-19T00:00:00Z"),
                rule: "rule \"90d\"".into()
            }
        );
        // v2: 60 days after 03-10 15:30 beats 90 days.
        assert_eq!(
            fate_of(&fates, "v2"),
            &Fate::Deleted {
                from: at("2026-05-10T00:00:00Z"),
                rule: "rule \"60d-keep1\"".into()
            }
        );
        // Two rules that only keep: the one that needs fewer writes is the threat.
        let keepers = [
            noncurrent("keep5", Some(1), Some(5)),
            noncurrent("keep3", Some(1), Some(3)),
        ];
        let fates = super::fates(&keepers, KEY, &listing(&FOUR), &BTreeMap::new());
        assert_eq!(
            fate_of(&fates, "v3"),
            &Fate::KeptForWrites {
                writes: 3,
                rule: "rule \"keep3\"".into()
            }
        );
    }

    #[test]
    fn only_enabled_rules_whose_filter_matches_the_version_count() {
        let disabled = Rule {
            enabled: false,
            ..noncurrent("off", Some(1), None)
        };
        let elsewhere = Rule {
            filter: Filter {
                prefix: "logs/".into(),
                ..Filter::default()
            },
            ..noncurrent("logs", Some(1), None)
        };
        let tagged = Rule {
            filter: Filter {
                prefix: "app/".into(),
                tags: vec![("tier".into(), "scratch".into())],
                ..Filter::default()
            },
            ..noncurrent("scratch", Some(1), None)
        };
        let small = Rule {
            filter: Filter {
                size_less_than: Some(1024),
                ..Filter::default()
            },
            ..noncurrent("small", Some(1), None)
        };
        let rules = [disabled, elsewhere, tagged.clone(), small];
        let versions = listing(&FOUR);
        let fates = fates(&rules, KEY, &versions, &BTreeMap::new());
        assert!(fates.iter().all(|f| f.fate == Fate::Kept), "{fates:#?}");

        // The tag rule reaches exactly the versions that carry the tag.
        let tags = BTreeMap::from([(
            VersionId::parse("v2").unwrap(),
            vec![("tier".to_string(), "scratch".to_string())],
        )]);
        let fates = super::fates(&[tagged], KEY, &versions, &tags);
        assert!(matches!(fate_of(&fates, "v2"), Fate::Deleted { .. }));
        assert_eq!(fate_of(&fates, "v3"), &Fate::Kept);
        assert_eq!(fate_of(&fates, "v1"), &Fate::Kept);
    }

    #[test]
    fn expiration_puts_a_delete_marker_on_the_current_state() {
        let versions = listing(&FOUR);
        let days = Rule {
            id: Some("expire".into()),
            enabled: true,
            expiration_days: Some(365),
            ..Rule::default()
        };
        let date = Rule {
            id: None,
            enabled: true,
            expiration_date: Some(at("2026-06-01T00:00:00Z")),
            ..Rule::default()
        };
        let expiry = current_expiry(
            std::slice::from_ref(&days),
            KEY,
            &versions[0],
            &BTreeMap::new(),
        );
        assert_eq!(
            expiry,
            Some(CurrentExpiry {
                rule: "rule \"expire\"".into(),
                from: at("2027-03-21T00:00:00Z")
            })
        );
        // Two rules: the earlier one.
        let expiry = current_expiry(&[days, date], KEY, &versions[0], &BTreeMap::new()).unwrap();
        assert_eq!(expiry.rule, "a rule without an ID");
        assert_eq!(expiry.from, at("2026-06-01T00:00:00Z"));
        // Expiration deletes no noncurrent version, and a state already deleted cannot expire.
        let fates = fates(
            &[Rule {
                enabled: true,
                expiration_days: Some(1),
                ..Rule::default()
            }],
            KEY,
            &versions,
            &BTreeMap::new(),
        );
        assert!(fates.iter().all(|f| f.fate == Fate::Kept));
        let gone = listing(&[("dm", "2026-03-20T09:00:00Z", true)]);
        assert_eq!(
            current_expiry(
                &[Rule {
                    enabled: true,
                    expiration_days: Some(1),
                    ..Rule::default()
                }],
                KEY,
                &gone[0],
                &BTreeMap::new()
            ),
            None
        );
    }

    #[test]
    fn the_horizon_is_the_oldest_version_not_yet_deletable() {
        let rules = [noncurrent("30d", Some(30), None)];
        let fates = fates(&rules, KEY, &listing(&FOUR), &BTreeMap::new());
        // On 04-05, v1 (due 04-01) may be gone; v2 (due 04-10) is the oldest left.
        let h = horizon(&fates, at("2026-04-05T12:00:00Z"));
        assert_eq!(h.earlier, 3);
        assert_eq!(h.deletable_now, 1);
        assert_eq!(h.deletable_later, 2);
        assert_eq!(h.oldest_restorable.unwrap().version_id.as_str(), "v2");
        assert_eq!(h.previous.unwrap().version_id.as_str(), "v3");
        // Without rules, every version stays.
        let kept = horizon(
            &super::fates(&[], KEY, &listing(&FOUR), &BTreeMap::new()),
            at("2026-04-05T12:00:00Z"),
        );
        assert_eq!((kept.deletable_now, kept.deletable_later), (0, 0));
        assert_eq!(kept.oldest_restorable.unwrap().version_id.as_str(), "v1");
        // Long after, nothing but the current version is left.
        let late = horizon(&fates, at("2027-01-01T00:00:00Z"));
        assert_eq!(late.deletable_now, 3);
        assert!(late.oldest_restorable.is_none());
    }

    #[test]
    fn rules_describe_themselves() {
        assert_eq!(
            noncurrent("a", Some(30), Some(5)).describe_noncurrent(),
            "deletes noncurrent versions 30 days after they are replaced, keeping the newest 5"
        );
        assert_eq!(
            noncurrent("a", Some(1), Some(1)).describe_noncurrent(),
            "deletes noncurrent versions 1 day after they are replaced, keeping the newest one"
        );
        let r = Rule {
            filter: Filter {
                prefix: "app/".into(),
                tags: vec![("k".into(), "v".into())],
                size_greater_than: Some(10),
                size_less_than: None,
            },
            ..Rule::default()
        };
        assert_eq!(r.name(), "a rule without an ID");
        assert_eq!(
            r.describe_filter(),
            "prefix \"app/\", tag k=v, objects larger than 10 bytes"
        );
    }
}
