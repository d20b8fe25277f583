//! Answers of S3-compatible servers that differ from AWS's only in naming, put right before the
//! SDK reads them, and the diagnosis of answers that cannot be read at all.
//!
//! The AWS SDK for Rust checks the local name of an answer's XML root and rejects anything but
//! AWS's, even when every element inside is right. Stock moto 5.2.1 names the root of its
//! GetBucketVersioning answer `GetBucketVersioningResponse` (AWS: `VersioningConfiguration`),
//! so without this every command fails on its first S3 call. [`RootNames`] renames exactly
//! the roots listed in [`ROOT_FIXES`], for exactly their operations, on 2xx answers only;
//! everything else reaches the SDK untouched. docs/test-servers.md lists how each server
//! names every answer tfrollback reads.
//!
//! When an answer still cannot be read, [`diagnose`] says what was wrong with it (no body, not
//! XML, another root than S3's) from the raw body, for the error the user sees.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;

/// One answer root a server names its own way, and AWS's name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RootFix {
    /// The SDK's operation name (the `Metadata` in the config bag).
    pub(crate) operation: &'static str,
    /// The root the server sends.
    pub(crate) server: &'static str,
    /// The root AWS sends, which the SDK requires.
    pub(crate) aws: &'static str,
}

/// Every rename applied. Only answers whose root is exactly `server` are touched: the other
/// reads tfrollback makes (ListObjectVersions, ListObjectsV2, GetObjectTagging) were probed on
/// stock moto and LocalStack and already carry AWS's roots.
pub(crate) const ROOT_FIXES: &[RootFix] = &[RootFix {
    operation: "GetBucketVersioning",
    server: "GetBucketVersioningResponse",
    aws: "VersioningConfiguration",
}];

/// The XML root AWS gives the answer of each operation tfrollback calls whose root the SDK
/// checks: what a diagnosis compares an unreadable answer with.
pub(crate) fn aws_root(operation: &str) -> Option<&'static str> {
    Some(match operation {
        "GetBucketVersioning" => "VersioningConfiguration",
        "GetBucketLifecycleConfiguration" => "LifecycleConfiguration",
        "GetObjectTagging" => "Tagging",
        "ListObjectVersions" => "ListVersionsResult",
        "ListObjectsV2" => "ListBucketResult",
        _ => return None,
    })
}

/// The SDK interceptor that applies [`ROOT_FIXES`]. Registered on the S3 client only.
#[derive(Debug, Default)]
pub(crate) struct RootNames;

impl Intercept for RootNames {
    fn name(&self) -> &'static str {
        "tfrollback::RootNames"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(operation) = cfg.load::<Metadata>().map(Metadata::name) else {
            return Ok(());
        };
        let Some(fix) = ROOT_FIXES
            .iter()
            .find(|f| f.operation == operation)
            .copied()
        else {
            return Ok(());
        };
        let response = context.response_mut();
        // An error answer has its own root (`Error`), which the SDK reads as it is.
        if !response.status().is_success() {
            return Ok(());
        }
        // The renamed body is shorter than the server's: its length no longer holds.
        response.headers_mut().remove("content-length");
        let body = response.take_body();
        *response.body_mut() = SdkBody::from_body_1_x(Renaming::new(body, fix));
        Ok(())
    }
}

/// A body that collects the server's answer, then yields it once with its root renamed (when
/// the root is the one to fix; otherwise unchanged). Answers renamed are a few hundred bytes.
struct Renaming {
    inner: SdkBody,
    collected: Vec<u8>,
    fix: RootFix,
    done: bool,
}

impl Renaming {
    fn new(inner: SdkBody, fix: RootFix) -> Renaming {
        Renaming {
            inner,
            collected: Vec::new(),
            fix,
            done: false,
        }
    }
}

impl http_body::Body for Renaming {
    type Data = Bytes;
    type Error = aws_smithy_types::body::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // S3 answers of these operations carry no trailers; data is all there is.
                    if let Ok(data) = frame.into_data() {
                        this.collected.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    this.done = true;
                    let body = std::mem::take(&mut this.collected);
                    let fixed = match rename_root(&body, this.fix.server, this.fix.aws) {
                        Some(renamed) => {
                            tracing::debug!(
                                "{} answer: XML root {} renamed to {}, AWS's name",
                                this.fix.operation,
                                this.fix.server,
                                this.fix.aws
                            );
                            renamed
                        }
                        None => body,
                    };
                    return Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(fixed)))));
                }
            }
        }
    }
}

/// Where the root element's start tag lies in an XML document.
#[derive(Debug, PartialEq, Eq)]
struct Root<'a> {
    name: &'a str,
    /// Offset of the name, just after `<`.
    name_at: usize,
    /// Whether the start tag ends with `/>` (an element with no content).
    empty: bool,
}

/// Finds the root element, past an optional BOM, the XML declaration, comments, processing
/// instructions and whitespace. None when the text is not XML.
fn root(body: &[u8]) -> Option<Root<'_>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut at = text
        .strip_prefix('\u{feff}')
        .map_or(0, |_| '\u{feff}'.len_utf8());
    loop {
        let rest = &text[at..];
        let trimmed = rest.trim_start();
        at += rest.len() - trimmed.len();
        if trimmed.starts_with("<?") {
            at += trimmed.find("?>")? + 2;
        } else if trimmed.starts_with("<!--") {
            at += trimmed.find("-->")? + 3;
        } else {
            break;
        }
    }
    let tag = text[at..].strip_prefix('<')?;
    let name_at = at + 1;
    let name_len = tag
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(tag.len());
    let name = &tag[..name_len];
    if name.is_empty() || !name.starts_with(|c: char| c.is_alphabetic() || c == '_') {
        return None;
    }
    // The start tag ends at the first `>` outside a quoted attribute value.
    let mut quote = None;
    let mut end = None;
    for (i, c) in tag.char_indices().skip(name_len) {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end?;
    Some(Root {
        name,
        name_at,
        empty: tag[..end].ends_with('/'),
    })
}

/// The body with its root element renamed from `from` to `to` (start and end tag; the
/// attributes, namespace included, are kept). None when the root is not exactly `from`, or
/// when its end tag is not where a well-formed document has it (at the end).
pub(crate) fn rename_root(body: &[u8], from: &str, to: &str) -> Option<Vec<u8>> {
    let found = root(body)?;
    if found.name != from {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let after_name = found.name_at + from.len();
    if found.empty {
        return Some(format!("{}{to}{}", &text[..found.name_at], &text[after_name..]).into_bytes());
    }
    let content = text[after_name..].trim_end();
    let close = content.rfind("</")?;
    let tail = &content[close + 2..];
    if tail.strip_prefix(from)?.trim_start() != ">" {
        return None;
    }
    let close_at = after_name + close + 2;
    Some(
        format!(
            "{}{to}{}{to}{}",
            &text[..found.name_at],
            &text[after_name..close_at],
            &text[close_at + from.len()..]
        )
        .into_bytes(),
    )
}

/// What was wrong with an answer the SDK could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// The body was empty where S3 sends an XML document.
    Empty,
    /// The body was not XML; `start` is its beginning, printable characters only.
    NotXml { start: String },
    /// The XML root was not the one S3 sends.
    WrongRoot {
        found: String,
        expected: &'static str,
    },
    /// The body was XML with S3's root (or of an operation without a root check), yet the SDK
    /// could not read it: `detail` is what the SDK said.
    Unreadable { detail: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Empty => write!(f, "the body was empty where S3 sends an XML document"),
            Problem::NotXml { start } => write!(f, "the body was not XML (it began {start:?})"),
            Problem::WrongRoot { found, expected } => write!(
                f,
                "the answer's XML root was <{found}> where S3 sends <{expected}>"
            ),
            Problem::Unreadable { detail } => write!(f, "{detail}"),
        }
    }
}

/// How many characters of a body that is not XML an error quotes.
const QUOTED_CHARS: usize = 40;

/// What was wrong with the 2xx answer to `operation` that the SDK rejected: from the raw body
/// when there is one (`None`: it was streamed, or never read), else from the SDK's own words.
pub(crate) fn diagnose(operation: &str, body: Option<&[u8]>, sdk_detail: &str) -> Problem {
    let unreadable = || Problem::Unreadable {
        detail: sdk_detail.to_string(),
    };
    let Some(body) = body else {
        return unreadable();
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Problem::Empty;
    }
    let Some(found) = root(body) else {
        return not_xml(body);
    };
    match aws_root(operation) {
        Some(expected) if local_name(found.name) != expected => Problem::WrongRoot {
            found: found.name.to_string(),
            expected,
        },
        _ => unreadable(),
    }
}

/// What was wrong with the body of an error answer that the SDK found no S3 error in (its
/// root is `Error`, as AWS's); None when the body looks like one (or there is none to see).
pub(crate) fn diagnose_error(body: Option<&[u8]>) -> Option<Problem> {
    let body = body?;
    if body.iter().all(u8::is_ascii_whitespace) {
        // HEAD answers and many 5xx from proxies have no body at all: nothing to describe.
        return None;
    }
    match root(body) {
        None => Some(not_xml(body)),
        Some(found) if local_name(found.name) != "Error" => Some(Problem::WrongRoot {
            found: found.name.to_string(),
            expected: "Error",
        }),
        Some(_) => None,
    }
}

fn not_xml(body: &[u8]) -> Problem {
    Problem::NotXml {
        start: String::from_utf8_lossy(body)
            .chars()
            .filter(|c| !c.is_control() || *c == ' ')
            .take(QUOTED_CHARS)
            .collect(),
    }
}

/// The local part of a possibly prefixed XML name (`s3:Tagging` -> `Tagging`), as the SDK
/// compares roots.
fn local_name(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, local)| local)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

    fn rename(body: &str) -> Option<String> {
        rename_root(
            body.as_bytes(),
            "GetBucketVersioningResponse",
            "VersioningConfiguration",
        )
        .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn renames_stock_motos_versioning_answer_keeping_the_namespace() {
        let moto = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<GetBucketVersioningResponse xmlns=\"{NS}\"><Status>Enabled</Status></GetBucketVersioningResponse>"
        );
        assert_eq!(
            rename(&moto).unwrap(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VersioningConfiguration xmlns=\"{NS}\"><Status>Enabled</Status></VersioningConfiguration>"
            )
        );
    }

    #[test]
    fn renames_the_self_closing_form_of_a_bucket_never_versioned() {
        let moto = format!("<?xml version=\"1.0\"?><GetBucketVersioningResponse xmlns=\"{NS}\"/>");
        assert_eq!(
            rename(&moto).unwrap(),
            format!("<?xml version=\"1.0\"?><VersioningConfiguration xmlns=\"{NS}\"/>")
        );
        assert_eq!(
            rename("<GetBucketVersioningResponse/>").unwrap(),
            "<VersioningConfiguration/>"
        );
    }

    #[test]
    fn keeps_trailing_whitespace_and_inner_elements_named_like_the_root() {
        let body = "<GetBucketVersioningResponse>\n  <Status>Suspended</Status>\n</GetBucketVersioningResponse >\n";
        assert_eq!(
            rename(body).unwrap(),
            "<VersioningConfiguration>\n  <Status>Suspended</Status>\n</VersioningConfiguration >\n"
        );
        // A `>` inside a quoted attribute does not end the start tag.
        assert_eq!(
            rename("<GetBucketVersioningResponse a=\"x/>\"></GetBucketVersioningResponse>")
                .unwrap(),
            "<VersioningConfiguration a=\"x/>\"></VersioningConfiguration>"
        );
    }

    #[test]
    fn leaves_every_other_root_alone() {
        // AWS's own answer, patched moto's and LocalStack's.
        assert_eq!(
            rename(&format!(
                "<VersioningConfiguration xmlns=\"{NS}\"><Status>Enabled</Status></VersioningConfiguration>"
            )),
            None
        );
        // A root that merely starts like the one to fix.
        assert_eq!(
            rename("<GetBucketVersioningResponseX></GetBucketVersioningResponseX>"),
            None
        );
        // An error document.
        assert_eq!(rename("<Error><Code>NoSuchBucket</Code></Error>"), None);
        // Not XML, empty, or cut off before the end tag.
        assert_eq!(rename("{\"Status\":\"Enabled\"}"), None);
        assert_eq!(rename(""), None);
        assert_eq!(
            rename("<GetBucketVersioningResponse><Status>Enabled</Status>"),
            None
        );
        assert_eq!(rename("<GetBucketVersioningResponse"), None);
    }

    #[test]
    fn finds_the_root_past_declaration_comments_and_bom() {
        let body = "\u{feff}<?xml version=\"1.0\"?>\n<!-- a comment --><s3:Tagging xmlns:s3=\"x\"><TagSet/></s3:Tagging>";
        let found = root(body.as_bytes()).unwrap();
        assert_eq!(found.name, "s3:Tagging");
        assert!(!found.empty);
        assert_eq!(local_name(found.name), "Tagging");
        assert!(root(b"<Tagging/>").unwrap().empty);
        assert_eq!(root(b"not xml"), None);
        assert_eq!(root(b"<!-- unterminated"), None);
    }

    #[test]
    fn every_fix_targets_an_operation_with_a_known_aws_root() {
        for fix in ROOT_FIXES {
            assert_eq!(aws_root(fix.operation), Some(fix.aws), "{fix:?}");
            assert_ne!(fix.server, fix.aws);
        }
    }

    #[test]
    fn diagnoses_an_answer_with_another_root() {
        let body =
            b"<?xml version=\"1.0\"?><VersioningStatus><Status>Enabled</Status></VersioningStatus>";
        let problem = diagnose("GetBucketVersioning", Some(body), "sdk said");
        assert_eq!(
            problem.to_string(),
            "the answer's XML root was <VersioningStatus> where S3 sends <VersioningConfiguration>"
        );
    }

    #[test]
    fn diagnoses_a_body_that_is_not_xml() {
        let body = b"<html>".to_vec();
        // HTML is XML-shaped: it is reported by its root.
        assert!(matches!(
            diagnose("ListObjectVersions", Some(&body), ""),
            Problem::WrongRoot {
                expected: "ListVersionsResult",
                ..
            }
        ));
        let problem = diagnose(
            "ListObjectVersions",
            Some(b"{\"versions\": []}\n\n and a long tail that is not quoted at all"),
            "",
        );
        assert_eq!(
            problem.to_string(),
            "the body was not XML (it began \"{\\\"versions\\\": []} and a long tail that is\")"
        );
        assert_eq!(
            diagnose("GetBucketVersioning", Some(b" \n"), ""),
            Problem::Empty
        );
    }

    #[test]
    fn describes_error_answers_that_are_no_s3_error_document() {
        assert_eq!(
            diagnose_error(Some(b"<Error><Code>SlowDown</Code></Error>")),
            None
        );
        assert_eq!(diagnose_error(Some(b"")), None);
        assert_eq!(diagnose_error(None), None);
        assert_eq!(
            diagnose_error(Some(b"Bad Gateway")).unwrap().to_string(),
            "the body was not XML (it began \"Bad Gateway\")"
        );
    }

    #[test]
    fn falls_back_to_the_sdks_words_when_the_body_looks_right() {
        let body = format!(
            "<VersioningConfiguration xmlns=\"{NS}\"><Status>Enabled</Status></VersioningConfiguration>"
        );
        assert_eq!(
            diagnose("GetBucketVersioning", Some(body.as_bytes()), "bad status"),
            Problem::Unreadable {
                detail: "bad status".into()
            }
        );
        assert_eq!(
            diagnose("GetObject", None, "invalid Last-Modified header"),
            Problem::Unreadable {
                detail: "invalid Last-Modified header".into()
            }
        );
    }
}
