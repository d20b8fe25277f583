//! Version selectors (`current`, `previous`, `~N`, `@TIME`, or an S3 version id) and the listing
//! model they resolve against. Pure: resolution takes the listing, newest first, and the run's
//! clock (for `@-2h` and `@14:30`); nothing here reads the clock.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use jiff::{SignedDuration, Timestamp};

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
    /// The version that was current at a moment: the newest entry written at or before it,
    /// passing over probable intermediate snapshots (see `Selector::at_moment`).
    At(Moment),
}

/// A moment as a point-in-time selector names it. Relative forms become a timestamp only
/// against the clock the caller hands in (`Moment::at`), so one run means one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moment {
    /// `@2026-11-20T14:30:00Z`, `@2026-11-20T15:30+01:00`.
    Exact(Timestamp),
    /// `@14:30`, `@14:30:05`: that time of today's date in UTC.
    Today(jiff::civil::Time),
    /// `@-2h`, `@-1h30m`, `@-1d`: this many seconds before now.
    Ago(i64),
}

/// The units of a relative moment, largest first: a day is 24 hours (UTC has no DST).
const UNITS: [(u8, i64); 4] = [(b'd', 86_400), (b'h', 3_600), (b'm', 60), (b's', 1)];

impl Moment {
    /// The timestamp this moment names when the clock says `now`.
    pub(crate) fn at(self, now: Timestamp) -> Timestamp {
        match self {
            Moment::Exact(t) => t,
            Moment::Today(time) => {
                let today = jiff::tz::Offset::UTC.to_datetime(now).date();
                jiff::tz::Offset::UTC
                    .to_timestamp(today.to_datetime(time))
                    .unwrap_or(Timestamp::MAX)
            }
            Moment::Ago(secs) => now
                .checked_sub(SignedDuration::from_secs(secs))
                .map_or(Timestamp::MIN, whole_second),
        }
    }

    /// Parses what follows the `@`; `input` is the whole argument, for messages.
    fn parse(body: &str, input: &str) -> Result<Moment, SelectorError> {
        let bad = |reason: String| SelectorError::BadMoment {
            input: input.escape_default().to_string(),
            reason,
        };
        if body.is_empty() {
            return Err(bad("nothing follows the `@`".into()));
        }
        if let Some(ago) = body.strip_prefix('-') {
            return parse_ago(ago).map(Moment::Ago).map_err(bad);
        }
        if body.starts_with('+') {
            return Err(bad(
                "a moment in the future names no version yet; relative moments count back, like `@-2h`"
                    .into(),
            ));
        }
        // `@14:30Z` says outright what `@14:30` means.
        let time_of_day = body.strip_suffix(['Z', 'z']).unwrap_or(body);
        if let Some(time) = parse_time_of_day(time_of_day) {
            return time.map(Moment::Today).map_err(bad);
        }
        if !body
            .bytes()
            .all(|b| b.is_ascii_digit() || b"-:+.TtZz ".contains(&b))
        {
            return Err(bad(
                "it holds characters no date and time has (only digits, `-`, `:`, `+`, `.`, `T` and `Z`)"
                    .into(),
            ));
        }
        if let Ok(t) = body.parse::<Timestamp>() {
            return Ok(Moment::Exact(t));
        }
        let has_time = body.contains(['T', 't', ' ']);
        let reason = if !has_time && body.parse::<jiff::civil::Date>().is_ok() {
            format!("a date alone is not a moment; add the time, e.g. `@{body}T00:00Z`")
        } else if body.parse::<jiff::civil::DateTime>().is_ok() {
            "it has no UTC offset; add `Z` for UTC or the offset, such as `+01:00`".into()
        } else {
            "it is neither a date and time (RFC 3339), a time of day nor a time ago".into()
        };
        Err(bad(reason))
    }
}

/// `2h`, `90m`, `1h30m`, `1d`: whole units from days down to seconds, each at most once.
fn parse_ago(text: &str) -> Result<i64, String> {
    if text.is_empty() {
        return Err("nothing follows the `-`".into());
    }
    let mut rest = text;
    let mut total: i64 = 0;
    let mut smallest_so_far = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit = rest.as_bytes().get(digits).copied();
        let rank = unit.and_then(|u| UNITS.iter().position(|(c, _)| *c == u));
        let Some(rank) = rank.filter(|_| digits > 0) else {
            let what = match rest[digits..].chars().next() {
                _ if digits == 0 => {
                    format!("`{}` comes where a number should", rest.escape_default())
                }
                Some(c) => format!("`{}` is not a unit", c.escape_default()),
                None => format!("`{}` has no unit", &rest[..digits]),
            };
            return Err(format!(
                "{what}; a time ago is a number and a unit (`d`, `h`, `m` or `s`) at a time"
            ));
        };
        if smallest_so_far.is_some_and(|r| rank <= r) {
            return Err(
                "its units go from days down to seconds, each once (`-1h30m`, not `-30m1h`)".into(),
            );
        }
        smallest_so_far = Some(rank);
        total = rest[..digits]
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(UNITS[rank].1))
            .and_then(|secs| total.checked_add(secs))
            .filter(|&secs| {
                Timestamp::UNIX_EPOCH
                    .checked_sub(SignedDuration::from_secs(secs))
                    .is_ok()
            })
            .ok_or_else(|| "that reaches back further than any clock goes".to_string())?;
        rest = &rest[digits + 1..];
    }
    Ok(total)
}

/// `14:30` or `14:30:05`; None when the text does not have that shape at all.
fn parse_time_of_day(text: &str) -> Option<Result<jiff::civil::Time, String>> {
    let parts: Vec<&str> = text.split(':').collect();
    let shaped = matches!(parts.len(), 2 | 3)
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[0].len() <= 2
        && parts[1..].iter().all(|p| p.len() == 2);
    if !shaped {
        return None;
    }
    let number = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<i8>().ok());
    let time = match (number(0), number(1), number(2)) {
        (Some(h), Some(m), Some(s)) => jiff::civil::Time::new(h, m, s, 0).ok(),
        _ => None,
    };
    Some(time.ok_or_else(|| {
        format!("`{text}` is no time of day; write hours 00 to 23, minutes and seconds 00 to 59")
    }))
}

impl FromStr for Moment {
    type Err = SelectorError;

    /// A moment with or without its `@` (`list --at 14:30`).
    fn from_str(s: &str) -> Result<Moment, SelectorError> {
        Moment::parse(s.strip_prefix('@').unwrap_or(s), s)
    }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moment::Exact(t) => t.fmt(f),
            Moment::Today(time) if time.second() == 0 => {
                write!(f, "{:02}:{:02}", time.hour(), time.minute())
            }
            Moment::Today(time) => write!(
                f,
                "{:02}:{:02}:{:02}",
                time.hour(),
                time.minute(),
                time.second()
            ),
            Moment::Ago(secs) => {
                f.write_str("-")?;
                let mut rest = *secs;
                for (unit, size) in UNITS {
                    if rest >= size || (rest == 0 && size == 1 && *secs == 0) {
                        write!(f, "{}{}", rest / size, char::from(unit))?;
                        rest %= size;
                    }
                }
                Ok(())
            }
        }
    }
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
            _ if s.starts_with('@') => Moment::parse(&s[1..], s).map(Selector::At),
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
            Selector::At(moment) => write!(f, "@{moment}"),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SelectorError {
    #[error(
        "`{input}` is not a version: use an S3 version id, `current`, `previous`, `~N` (N versions back), `last-good`, `last:LABEL` or `@TIME` (the version current then: `@2026-11-20T14:30:00Z`, `@14:30` today in UTC, `@-2h`)"
    )]
    Invalid { input: String },
    #[error(
        "`{input}` is not a moment: {reason}. A moment is `@2026-11-20T14:30:00Z` (or with an offset such as `+01:00`), `@14:30` (today, UTC) or `@-2h` (`d`, `h`, `m`, `s` ago)"
    )]
    BadMoment { input: String, reason: String },
    #[error("`{selector}` is {moment}, which is still to come (it is {now} now): {advice}")]
    Future {
        selector: String,
        moment: Timestamp,
        now: Timestamp,
        advice: String,
    },
    #[error(
        "no version of {location} was written at or before {moment} (`{selector}`): the oldest version kept, {oldest}, was written at {oldest_at}"
    )]
    BeforeOldest {
        selector: String,
        moment: Timestamp,
        oldest: VersionId,
        oldest_at: Timestamp,
        location: String,
    },
    #[error(
        "{location} held no state at {moment} (`{selector}`): it had been deleted at {deleted_at} (delete marker {marker}); {}",
        before_delete(.before.as_deref())
    )]
    DeletedAt {
        selector: String,
        moment: Timestamp,
        marker: VersionId,
        deleted_at: Timestamp,
        /// The newest state written before the delete, and when (boxed: errors stay small).
        before: Option<Box<(VersionId, Timestamp)>>,
        location: String,
    },
    #[error(
        "no apply had finished writing {location} by {moment} (`{selector}`): the versions written by then ({}) are probable intermediate snapshots of an apply still running; name one by its id to use it anyway",
        list_ids(.snapshots)
    )]
    OnlySnapshots {
        selector: String,
        moment: Timestamp,
        snapshots: Vec<VersionId>,
        location: String,
    },
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

fn before_delete(before: Option<&(VersionId, Timestamp)>) -> String {
    match before {
        Some((id, at)) => format!(
            "the last state before the delete is {id}, written at {at}: name that id to use it"
        ),
        None => "no state written before the delete is kept".into(),
    }
}

fn list_ids(ids: &[VersionId]) -> String {
    ids.iter()
        .map(VersionId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `t` without its fraction of a second: S3 times have none, so `LastModified <= t` is the
/// same test, and messages read better.
fn whole_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

impl Selector {
    /// Picks the version this selector names in a listing; `now` is the run's clock, which
    /// turns `@-2h` and `@14:30` into a moment.
    pub(crate) fn resolve<'a>(
        &self,
        listing: &'a Listing,
        location: &str,
        now: Timestamp,
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
            Selector::At(moment) => self
                .at_moment(listing, *moment, now, &location)
                .map(|(version, _)| version),
        }
    }

    /// `@TIME`: the newest entry written at or before the moment, the listing's order deciding
    /// between entries of the same second (S3 lists newest first, and its times have whole
    /// seconds). Probable intermediate snapshots are passed over (and returned, newest first):
    /// they are part of an apply still running then, so the state people had is the one before.
    /// A delete marker there means there was no state then: refused, naming the state before
    /// it, rather than quietly reaching past a delete.
    fn at_moment<'a>(
        &self,
        listing: &'a Listing,
        moment: Moment,
        now: Timestamp,
        location: &str,
    ) -> Result<(&'a ObjectVersion, Vec<&'a ObjectVersion>), SelectorError> {
        let t = moment.at(now);
        if t > now {
            return Err(SelectorError::Future {
                selector: self.to_string(),
                moment: t,
                now: whole_second(now),
                advice: future_advice(moment, now),
            });
        }
        let versions = &listing.versions;
        let Some(first) = versions.iter().position(|v| v.last_modified <= t) else {
            let oldest = versions.last().ok_or_else(|| SelectorError::Empty {
                location: location.to_string(),
            })?;
            return Err(SelectorError::BeforeOldest {
                selector: self.to_string(),
                moment: t,
                oldest: oldest.version_id.clone(),
                oldest_at: oldest.last_modified,
                location: location.to_string(),
            });
        };
        let mut skipped = Vec::new();
        for (i, v) in versions.iter().enumerate().skip(first) {
            if v.delete_marker {
                let before = versions[i + 1..]
                    .iter()
                    .find(|b| !b.delete_marker && !listing.intermediate.contains(&b.version_id))
                    .map(|b| Box::new((b.version_id.clone(), b.last_modified)));
                return Err(SelectorError::DeletedAt {
                    selector: self.to_string(),
                    moment: t,
                    marker: v.version_id.clone(),
                    deleted_at: v.last_modified,
                    before,
                    location: location.to_string(),
                });
            }
            if !listing.intermediate.contains(&v.version_id) {
                return Ok((v, skipped));
            }
            skipped.push(v);
        }
        Err(SelectorError::OnlySnapshots {
            selector: self.to_string(),
            moment: t,
            snapshots: skipped.iter().map(|v| v.version_id.clone()).collect(),
            location: location.to_string(),
        })
    }

    /// The probable intermediate snapshots this selector passed over on its way to `target`,
    /// newest first: for `@TIME` those written by the moment and newer than the target, for
    /// the others those between `from` and the target.
    pub(crate) fn passed_over(
        &self,
        listing: &Listing,
        from: &VersionId,
        target: &VersionId,
        now: Timestamp,
    ) -> Vec<VersionId> {
        let versions = listing.versions.iter();
        let between: Vec<&ObjectVersion> = match self {
            Selector::At(moment) => {
                let t = moment.at(now);
                versions
                    .skip_while(|v| v.last_modified > t)
                    .take_while(|v| &v.version_id != target)
                    .collect()
            }
            _ => versions
                .skip_while(|v| &v.version_id != from)
                .skip(1)
                .take_while(|v| &v.version_id != target)
                .collect(),
        };
        between
            .into_iter()
            .filter(|v| listing.intermediate.contains(&v.version_id))
            .map(|v| v.version_id.clone())
            .collect()
    }

    /// This selector with a relative moment pinned to the timestamp it means now: what a
    /// journal and the history record, so that `@-2h` names one moment whenever it is read.
    pub(crate) fn pinned(&self, now: Timestamp) -> Selector {
        match self {
            Selector::At(moment) => Selector::At(Moment::Exact(moment.at(now))),
            other => other.clone(),
        }
    }

    /// The part of a listing (indices, newest first) in which probable intermediate snapshots
    /// must be known for this selector to resolve: the newest versions for `~N`; for `@TIME`,
    /// from the versions an apply running then could have written last (it runs at most
    /// `APPLY_HOURS`) down to a few past the moment.
    pub(crate) fn window(&self, versions: &[ObjectVersion], now: Timestamp) -> Range<usize> {
        const SLACK: usize = 8;
        match self {
            Selector::Back(n) => {
                0..versions
                    .len()
                    .min(n.saturating_mul(2).saturating_add(SLACK))
            }
            Selector::At(moment) => {
                let t = moment.at(now);
                let Some(at) = versions.iter().position(|v| v.last_modified <= t) else {
                    return 0..0;
                };
                let horizon = t
                    .checked_add(SignedDuration::from_hours(APPLY_HOURS))
                    .unwrap_or(Timestamp::MAX);
                let start = versions
                    .iter()
                    .position(|v| v.last_modified <= horizon)
                    .map_or(at, |i| i.min(at));
                start..versions.len().min(at.saturating_add(SLACK))
            }
            _ => 0..0,
        }
    }
}

/// The selectors' windows (`Selector::window`) as one range covering them all.
pub(crate) fn window(
    selectors: &[&Selector],
    versions: &[ObjectVersion],
    now: Timestamp,
) -> Range<usize> {
    selectors
        .iter()
        .map(|s| s.window(versions, now))
        .filter(|r| !r.is_empty())
        .reduce(|a, b| a.start.min(b.start)..a.end.max(b.end))
        .unwrap_or(0..0)
}

/// What to do about a moment still to come.
fn future_advice(moment: Moment, now: Timestamp) -> String {
    match moment {
        Moment::Today(_) => {
            let today = jiff::tz::Offset::UTC.to_datetime(now).date();
            let yesterday = today.yesterday().unwrap_or(today);
            format!(
                "`@{moment}` is a time of today in UTC, and today's has not come yet; yesterday's is `@{yesterday}T{moment}Z`, and a local time needs its offset, like `@{today}T{moment}+01:00`"
            )
        }
        Moment::Exact(_) | Moment::Ago(_) => {
            "no version was written then yet; name a moment in the past and check its offset (`Z` is UTC); the latest version is `current`".into()
        }
    }
}

/// The current version: the latest entry, unless the state was deleted.
pub(crate) fn current(listing: &Listing, location: &str) -> Result<ObjectVersion, SelectorError> {
    // The clock plays no part in `current`.
    Selector::Current
        .resolve(listing, location, Timestamp::UNIX_EPOCH)
        .cloned()
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
        sel.resolve(&listing, "s3://b/k", Timestamp::UNIX_EPOCH)
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
            Selector::Current.resolve(&listing, "x", Timestamp::UNIX_EPOCH),
            Err(SelectorError::CurrentDeleted { .. })
        ));
        let previous = Selector::Back(1)
            .resolve(&listing, "x", Timestamp::UNIX_EPOCH)
            .unwrap();
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
                .resolve(&listing, "x", Timestamp::UNIX_EPOCH)
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
        for bad in [
            "@$(id)",
            "@../x",
            "@2026-11-20T14:30:00Z;rm -rf /",
            "@2026-11-20T14:30:00Z[Europe/Paris]",
            "@-2h;id",
        ] {
            assert!(
                matches!(
                    bad.parse::<Selector>(),
                    Err(SelectorError::BadMoment { .. })
                ),
                "{bad}"
            );
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn at(s: &str) -> Moment {
        match s.parse::<Selector>() {
            Ok(Selector::At(moment)) => moment,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn bad_moment(s: &str) -> String {
        match s.parse::<Selector>() {
            Err(e @ SelectorError::BadMoment { .. }) => e.to_string(),
            other => panic!("{s} should be refused as a moment: {other:?}"),
        }
    }

    #[test]
    fn moments_are_written_as_people_write_them() {
        let exact = Moment::Exact(ts("2026-11-20T14:30:00Z"));
        assert_eq!(at("@2026-11-20T14:30:00Z"), exact);
        assert_eq!(at("@2026-11-20T15:30:00+01:00"), exact, "an offset");
        assert_eq!(at("@2026-11-20T09:30:00-05:00"), exact);
        assert_eq!(at("@2026-11-20T14:30Z"), exact, "minute precision");
        assert_eq!(at("@2026-11-20 14:30:00Z"), exact, "a space for the T");
        let time = |h, m, s| Moment::Today(jiff::civil::Time::new(h, m, s, 0).unwrap());
        assert_eq!(at("@14:30"), time(14, 30, 0));
        assert_eq!(at("@14:30:05"), time(14, 30, 5));
        assert_eq!(at("@9:05"), time(9, 5, 0));
        assert_eq!(at("@14:30Z"), time(14, 30, 0), "UTC, said outright");
        assert_eq!(at("@-2h"), Moment::Ago(7_200));
        assert_eq!(at("@-90m"), Moment::Ago(5_400));
        assert_eq!(at("@-30s"), Moment::Ago(30));
        assert_eq!(at("@-1d"), Moment::Ago(86_400));
        assert_eq!(at("@-1h30m"), Moment::Ago(5_400));
        assert_eq!(at("@-1d2h3m4s"), Moment::Ago(93_784));
        assert_eq!(at("@-0s"), Moment::Ago(0));
        // `list --at` takes a moment with or without its `@`.
        assert_eq!("14:30".parse::<Moment>().unwrap(), time(14, 30, 0));
        assert_eq!("@-2h".parse::<Moment>().unwrap(), Moment::Ago(7_200));
        // Shown the way they are parsed back.
        for (written, shown) in [
            ("@-90m", "@-1h30m"),
            ("@-1d", "@-1d"),
            ("@-0s", "@-0s"),
            ("@9:05", "@09:05"),
            ("@14:30:05", "@14:30:05"),
            ("@2026-11-20T15:30+01:00", "@2026-11-20T14:30:00Z"),
        ] {
            assert_eq!(written.parse::<Selector>().unwrap().to_string(), shown);
        }
    }

    #[test]
    fn a_malformed_moment_says_what_is_wrong_and_what_to_write() {
        for (input, says) in [
            ("@", "nothing follows the `@`"),
            ("@2026-11-20T14:30:00", "no UTC offset; add `Z`"),
            ("@2026-11-20", "a date alone is not a moment"),
            ("@+2h", "relative moments count back"),
            ("@24:00", "no time of day"),
            ("@14:60", "no time of day"),
            ("@-", "nothing follows the `-`"),
            ("@-2", "`2` has no unit"),
            ("@-2h30", "`30` has no unit"),
            ("@-h", "`h` comes where a number should"),
            ("@-2H", "`H` is not a unit"),
            ("@-30m1h", "from days down to seconds"),
            ("@-1h1h", "from days down to seconds"),
            ("@-99999999999999d", "further than any clock"),
            ("@yesterday", "characters no date and time has"),
            ("@2026-13-01T00:00Z", "neither a date and time"),
        ] {
            let message = bad_moment(input);
            assert!(message.contains(says), "{input}: {message}");
            assert!(message.contains("`@-2h`"), "every one says what to write");
        }
    }

    /// Versions at these seconds, newest first as S3 lists them; `dm` ids are delete markers.
    fn timed(entries: &[(&str, i64)]) -> Listing {
        let versions = entries
            .iter()
            .enumerate()
            .map(|(i, (id, secs))| ObjectVersion {
                last_modified: Timestamp::from_second(*secs).unwrap(),
                ..version(id, i == 0, id.starts_with("dm"))
            })
            .collect();
        Listing {
            versions,
            ..Listing::default()
        }
    }

    fn pick_at(listing: &Listing, selector: &str, now: i64) -> Result<String, SelectorError> {
        selector
            .parse::<Selector>()?
            .resolve(listing, "s3://b/k", Timestamp::from_second(now).unwrap())
            .map(|v| v.version_id.to_string())
    }

    fn exact(secs: i64) -> String {
        format!("@{}", Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn a_moment_picks_the_newest_version_written_at_or_before_it() {
        // v3 and v2 were written in the same second: the listing's order says v3 is newer.
        let listing = timed(&[("v4", 1_000), ("v3", 900), ("v2", 900), ("v1", 800)]);
        let now = 2_000;
        assert_eq!(
            pick_at(&listing, &exact(1_000), now).unwrap(),
            "v4",
            "exactly at"
        );
        assert_eq!(
            pick_at(&listing, &exact(999), now).unwrap(),
            "v3",
            "a second before"
        );
        assert_eq!(
            pick_at(&listing, &exact(950), now).unwrap(),
            "v3",
            "between"
        );
        assert_eq!(
            pick_at(&listing, &exact(900), now).unwrap(),
            "v3",
            "a tie: the newer"
        );
        assert_eq!(pick_at(&listing, &exact(899), now).unwrap(), "v1");
        assert_eq!(
            pick_at(&listing, &exact(800), now).unwrap(),
            "v1",
            "the oldest"
        );
        assert_eq!(pick_at(&listing, &exact(2_000), now).unwrap(), "v4", "now");
        // Fractions of a second: S3's times have none, so 999.5 is still before 1000.
        assert_eq!(
            pick_at(&listing, "@1970-01-01T00:16:39.5Z", now).unwrap(),
            "v3"
        );
        // Relative to the clock handed in.
        assert_eq!(pick_at(&listing, "@-1000s", now).unwrap(), "v4");
        assert_eq!(pick_at(&listing, "@-1001s", now).unwrap(), "v3");
        assert_eq!(pick_at(&listing, "@-18m20s", now).unwrap(), "v3");
        assert_eq!(pick_at(&listing, "@-18m21s", now).unwrap(), "v1");
        match pick_at(&listing, &exact(799), now) {
            Err(e @ SelectorError::BeforeOldest { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains("v1, was written at 1970-01-01T00:13:20Z"),
                    "{message}"
                );
                assert!(
                    message.contains("at or before 1970-01-01T00:13:19Z"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_time_of_day_is_today_in_utc_and_a_future_one_is_refused() {
        let listing = timed(&[("v2", 1_700_000_000), ("v1", 1_600_000_000)]);
        // 2023-11-14T22:13:20Z.
        let now = 1_700_000_000;
        assert_eq!(
            at("@22:13").at(Timestamp::from_second(now).unwrap()),
            ts("2023-11-14T22:13:00Z")
        );
        assert_eq!(pick_at(&listing, "@22:13:20", now).unwrap(), "v2");
        assert_eq!(pick_at(&listing, "@22:13:19", now).unwrap(), "v1");
        match pick_at(&listing, "@22:14", now) {
            Err(e @ SelectorError::Future { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains("`@22:14` is 2023-11-14T22:14:00Z, which is still to come (it is 2023-11-14T22:13:20Z now)"),
                    "{message}"
                );
                assert!(
                    message.contains("yesterday's is `@2023-11-13T22:14Z`"),
                    "{message}"
                );
            }
            other => panic!("not refused as still to come: {other:?}"),
        }
        assert!(matches!(
            pick_at(&listing, "@2023-11-14T22:13:21Z", now),
            Err(SelectorError::Future { .. })
        ));
        assert!(matches!(
            pick_at(&listing, "@2023-11-14T23:13:20+01:00", now),
            Ok(v) if v == "v2"
        ));
    }

    #[test]
    fn a_moment_when_the_state_was_deleted_is_refused_naming_the_state_before() {
        let listing = timed(&[("v3", 1_000), ("dm2", 900), ("v1", 800)]);
        assert_eq!(pick_at(&listing, &exact(1_000), 2_000).unwrap(), "v3");
        assert_eq!(pick_at(&listing, &exact(899), 2_000).unwrap(), "v1");
        match pick_at(&listing, &exact(950), 2_000) {
            Err(e @ SelectorError::DeletedAt { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains("deleted at 1970-01-01T00:15:00Z (delete marker dm2)"),
                    "{message}"
                );
                assert!(
                    message.contains("the last state before the delete is v1"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        // Deleted at the very second it was written: the listing's order says which came last.
        let listing = timed(&[("dm2", 900), ("v1", 900)]);
        assert!(matches!(
            pick_at(&listing, &exact(900), 2_000),
            Err(SelectorError::DeletedAt { .. })
        ));
        let listing = timed(&[("dm1", 900)]);
        match pick_at(&listing, &exact(950), 2_000) {
            Err(e @ SelectorError::DeletedAt { before: None, .. }) => {
                assert!(
                    e.to_string()
                        .contains("no state written before the delete is kept")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_moment_during_a_long_apply_passes_over_its_snapshots() {
        let id = |s: &str| VersionId::parse(s).unwrap();
        // mid2 and mid1 are snapshots of the apply whose result is final.
        let mut listing = timed(&[
            ("final", 1_000),
            ("mid2", 990),
            ("mid1", 970),
            ("deploy", 900),
        ]);
        listing.intermediate.extend([id("mid2"), id("mid1")]);
        let now = Timestamp::from_second(2_000).unwrap();
        let selector = |secs: i64| exact(secs).parse::<Selector>().unwrap();
        let passed = |secs: i64, target: &str| {
            selector(secs).passed_over(&listing, &id("final"), &id(target), now)
        };
        assert_eq!(pick_at(&listing, &exact(995), 2_000).unwrap(), "deploy");
        assert_eq!(passed(995, "deploy"), [id("mid2"), id("mid1")]);
        assert_eq!(pick_at(&listing, &exact(980), 2_000).unwrap(), "deploy");
        assert_eq!(passed(980, "deploy"), [id("mid1")]);
        assert_eq!(pick_at(&listing, &exact(1_000), 2_000).unwrap(), "final");
        assert!(passed(1_000, "final").is_empty());
        assert_eq!(pick_at(&listing, &exact(969), 2_000).unwrap(), "deploy");
        assert!(passed(969, "deploy").is_empty(), "nothing was running then");
        // `previous` passes over the same snapshots, between the current version and its target.
        assert_eq!(
            Selector::Back(1).passed_over(&listing, &id("final"), &id("deploy"), now),
            [id("mid2"), id("mid1")]
        );
        // The first apply still running: no finished state existed yet.
        let mut first = timed(&[("final", 1_000), ("mid", 990)]);
        first.intermediate.insert(id("mid"));
        match pick_at(&first, &exact(995), 2_000) {
            Err(e @ SelectorError::OnlySnapshots { .. }) => {
                assert!(
                    e.to_string()
                        .contains("(mid) are probable intermediate snapshots"),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_moments_window_covers_any_apply_running_then_and_a_few_versions_past_it() {
        let now = Timestamp::from_second(100_000).unwrap();
        let listing = timed(&[
            ("much-later", 90_000),
            ("later", 1_000 + 3_600),
            ("final", 1_000),
            ("mid", 990),
            ("deploy", 900),
        ]);
        let window = |s: &str| {
            s.parse::<Selector>()
                .unwrap()
                .window(&listing.versions, now)
        };
        assert_eq!(
            window(&exact(995)),
            1..5,
            "an apply may run 6 hours, not 25"
        );
        assert_eq!(window(&exact(60_000)), 1..5);
        assert_eq!(window(&exact(89_999)), 0..5, "much-later is within 6 hours");
        assert_eq!(window(&exact(90_000)), 0..5);
        assert_eq!(
            window(&exact(899)),
            0..0,
            "before the oldest: nothing to resolve"
        );
        assert_eq!(window("previous"), 0..5);
        assert_eq!(window("current"), 0..0);
        let many = timed(&(0..40).map(|i| ("v", 10_000 - i)).collect::<Vec<_>>());
        let w = exact(9_990)
            .parse::<Selector>()
            .unwrap()
            .window(&many.versions, now);
        assert_eq!(w, 0..18);
        // Two selectors (`diff A --against B`): one range over both.
        let (a, b) = ("~1".parse().unwrap(), exact(9_970).parse().unwrap());
        assert_eq!(window_of(&[&a, &b], &many.versions, now), 0..38);
        assert_eq!(window_of(&[], &many.versions, now), 0..0);
    }

    use super::window as window_of;

    #[test]
    fn a_relative_moment_is_pinned_to_the_clock_for_the_record() {
        let now = ts("2026-11-20T14:30:00.25Z");
        let pinned = at("@-2h").at(now);
        assert_eq!(
            pinned,
            ts("2026-11-20T12:30:00Z"),
            "whole seconds, like S3's times"
        );
        let selector: Selector = "@-2h".parse().unwrap();
        assert_eq!(selector.pinned(now).to_string(), "@2026-11-20T12:30:00Z");
        assert_eq!(
            "previous"
                .parse::<Selector>()
                .unwrap()
                .pinned(now)
                .to_string(),
            "previous"
        );
        // A pinned selector means the same version however late it is read again.
        let listing = timed(&[("v2", 1_800_000_000), ("v1", 1_600_000_000)]);
        let later = Timestamp::from_second(1_900_000_000).unwrap();
        let pinned = selector.pinned(Timestamp::from_second(1_700_000_100).unwrap());
        assert_eq!(
            pinned
                .resolve(&listing, "x", later)
                .unwrap()
                .version_id
                .as_str(),
            "v1"
        );
    }

    proptest::proptest! {
        /// Any input either parses into a selector whose id is only safe characters, or is
        /// refused; nothing panics. Moments are shown the way they parse back.
        #[test]
        fn selector_parsing_is_total_and_ids_stay_safe(input in "\\PC{0,80}") {
            match input.parse::<Selector>() {
                Ok(Selector::Id(id)) => {
                    proptest::prop_assert_eq!(id.as_str(), input.as_str());
                    proptest::prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b"._-=+".contains(&b)));
                }
                Ok(Selector::Marked(label)) => proptest::prop_assert!(valid_label(&label)),
                Ok(Selector::At(moment)) => {
                    let shown = Selector::At(moment).to_string();
                    proptest::prop_assert_eq!(shown.parse::<Selector>(), Ok(Selector::At(moment)));
                }
                Ok(_) | Err(_) => {}
            }
        }

        /// The same over inputs shaped like moments, which random text rarely is.
        #[test]
        fn moment_parsing_is_total_and_round_trips(input in "@[-+0-9:.TZz dhms]{0,28}") {
            if let Ok(selector) = input.parse::<Selector>() {
                proptest::prop_assert!(matches!(selector, Selector::At(_)));
                proptest::prop_assert_eq!(selector.to_string().parse::<Selector>(), Ok(selector));
            }
        }

        /// Whatever the moment and the clock, resolution picks the first entry (newest first)
        /// written at or before the moment, or refuses; it never panics.
        #[test]
        fn a_moment_resolves_to_the_first_entry_at_or_before_it(
            times in proptest::collection::vec(0i64..5_000, 0..12),
            moment in -1_000i64..10_000,
            now in 0i64..10_000,
            ago in 0i64..20_000,
        ) {
            let mut times = times;
            times.sort_unstable_by(|a, b| b.cmp(a));
            let ids: Vec<String> = (0..times.len()).map(|i| format!("v{i}")).collect();
            let entries: Vec<(&str, i64)> =
                ids.iter().map(String::as_str).zip(times.iter().copied()).collect();
            let listing = timed(&entries);
            let clock = Timestamp::from_second(now).unwrap();
            for selector in [
                Selector::At(Moment::Exact(Timestamp::from_second(moment).unwrap())),
                Selector::At(Moment::Ago(ago)),
            ] {
                let t = match selector { Selector::At(m) => m.at(clock), _ => unreachable!() };
                let expected = listing.versions.iter().find(|v| v.last_modified <= t);
                match selector.resolve(&listing, "x", clock) {
                    Ok(v) => {
                        proptest::prop_assert!(t <= clock);
                        proptest::prop_assert_eq!(Some(v), expected);
                    }
                    Err(SelectorError::Future { .. }) => proptest::prop_assert!(t > clock),
                    Err(SelectorError::BeforeOldest { .. } | SelectorError::Empty { .. }) => {
                        proptest::prop_assert!(expected.is_none());
                    }
                    Err(e) => proptest::prop_assert!(false, "{e}"),
                }
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
