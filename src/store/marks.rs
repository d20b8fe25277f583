//! Known-good marks. A mark is a tag on the S3 object version itself (`tfrollback:mark:LABEL`,
//! visible in the S3 console and to any tool), and an entry in a small index next to the state
//! (`<key>.tfrollback/marks.json`) so that `list` and `last-good` learn every mark with one
//! request instead of one per version. The index is updated with compare-and-swap writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::selector::VersionId;
use crate::store::s3::{Condition, S3Error, StateStore};

const TAG_MARK: &str = "tfrollback:mark:";
const TAG_NOTE: &str = "tfrollback:note:";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Mark {
    pub(crate) version_id: VersionId,
    pub(crate) label: String,
    #[serde(default)]
    pub(crate) note: Option<String>,
    pub(crate) who: String,
    pub(crate) at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MarkIndex {
    #[serde(default)]
    pub(crate) marks: Vec<Mark>,
}

impl MarkIndex {
    /// Version -> labels.
    pub(crate) fn by_version(&self) -> BTreeMap<VersionId, Vec<String>> {
        let mut map: BTreeMap<VersionId, Vec<String>> = BTreeMap::new();
        for m in &self.marks {
            map.entry(m.version_id.clone())
                .or_default()
                .push(m.label.clone());
        }
        map
    }
}

#[derive(Clone)]
pub(crate) struct MarkStore {
    store: StateStore,
}

impl MarkStore {
    pub(crate) fn new(store: StateStore) -> MarkStore {
        MarkStore { store }
    }

    /// `<key>.tfrollback/marks.json`
    pub(crate) fn index_key(&self) -> String {
        format!("{}.tfrollback/marks.json", self.store.key())
    }

    /// The marks; an index this identity may not read only hides them (without
    /// s3:ListBucket, S3 answers a missing object with 403 rather than 404).
    pub(crate) async fn load(&self) -> Result<MarkIndex, S3Error> {
        self.load_tagged().await.map(|(index, _)| index)
    }

    /// The marks with the index's ETag (None: no index, or one this identity may not read),
    /// so a cached copy can be checked against the ETag a version listing shows.
    pub(crate) async fn load_tagged(&self) -> Result<(MarkIndex, Option<String>), S3Error> {
        match self.load_with_etag().await {
            Err(S3Error::AccessDenied { .. }) => {
                tracing::warn!(
                    "cannot read {} (access denied): marks are not shown",
                    self.index_key()
                );
                Ok((MarkIndex::default(), None))
            }
            other => other,
        }
    }

    async fn load_with_etag(&self) -> Result<(MarkIndex, Option<String>), S3Error> {
        match self.store.get(&self.index_key()).await? {
            // A damaged index only hides marks; the tags on the versions are still there.
            Some(f) => Ok((serde_json::from_slice(&f.body).unwrap_or_default(), f.etag)),
            None => Ok((MarkIndex::default(), None)),
        }
    }

    /// Changes the index with `change`, retrying when someone else changed it meanwhile.
    async fn update(&self, change: impl Fn(&mut MarkIndex)) -> Result<(), S3Error> {
        for _ in 0..5 {
            let (mut index, etag) = self.load_with_etag().await?;
            change(&mut index);
            let body = serde_json::to_vec_pretty(&index).unwrap_or_default();
            let condition = match etag {
                Some(etag) => Condition::Matches(etag),
                None => Condition::Absent,
            };
            match self.store.put(&self.index_key(), body, &condition).await {
                Err(S3Error::PreconditionFailed { .. }) => {}
                other => return other.map(|_| ()),
            }
        }
        Err(S3Error::PreconditionFailed {
            target: format!("s3://{}/{}", self.store.bucket(), self.index_key()),
            etag: "(changed five times in a row)".into(),
        })
    }

    /// Tags the version and records the mark (replacing an earlier mark with the same label on
    /// that version).
    pub(crate) async fn mark(&self, mark: Mark) -> Result<(), S3Error> {
        let mut tags: Vec<(String, String)> = self
            .store
            .tags(&mark.version_id)
            .await?
            .into_iter()
            .filter(|(k, _)| {
                k != &format!("{TAG_MARK}{}", mark.label)
                    && k != &format!("{TAG_NOTE}{}", mark.label)
            })
            .collect();
        tags.push((
            format!("{TAG_MARK}{}", mark.label),
            tag_value(&format!("{} {}", mark.at, mark.who)),
        ));
        if let Some(note) = &mark.note {
            tags.push((format!("{TAG_NOTE}{}", mark.label), tag_value(note)));
        }
        self.store.set_tags(&mark.version_id, &tags).await?;
        self.update(|index| {
            index
                .marks
                .retain(|m| !(m.version_id == mark.version_id && m.label == mark.label));
            index.marks.push(mark.clone());
        })
        .await
    }

    /// Removes a mark from the version's tags and the index. Returns whether it was there.
    pub(crate) async fn unmark(&self, version: &VersionId, label: &str) -> Result<bool, S3Error> {
        let tags = self.store.tags(version).await?;
        let keep: Vec<(String, String)> = tags
            .iter()
            .filter(|(k, _)| {
                k != &format!("{TAG_MARK}{label}") && k != &format!("{TAG_NOTE}{label}")
            })
            .cloned()
            .collect();
        let tagged = keep.len() != tags.len();
        if tagged {
            self.store.set_tags(version, &keep).await?;
        }
        let indexed = self
            .load()
            .await?
            .marks
            .iter()
            .any(|m| &m.version_id == version && m.label == label);
        if indexed {
            self.update(|index| {
                index
                    .marks
                    .retain(|m| !(&m.version_id == version && m.label == label));
            })
            .await?;
        }
        Ok(tagged || indexed)
    }
}

/// S3 tag values allow letters, digits, spaces and `+ - = . _ : / @`, up to 256 characters.
fn tag_value(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() || " +-=._:/@".contains(c) {
                c
            } else {
                ' '
            }
        })
        .take(256)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_values_keep_to_what_s3_allows() {
        assert_eq!(
            tag_value("smoke test #42 passed; ok!"),
            "smoke test  42 passed  ok "
        );
        assert_eq!(tag_value(&"x".repeat(300)).len(), 256);
    }
}
