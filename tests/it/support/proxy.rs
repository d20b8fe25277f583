//! A fault-injecting HTTP proxy on loopback, placed between tfrollback and the lab's server
//! for faults a real server will not produce on demand: 500/503 answers, connections cut
//! mid-body, answers slower than the timeout, AccessDenied. One request per connection
//! (`Connection: close`), every other byte forwarded as is. It also logs every request it
//! forwards with the bytes of its answer's body and when it arrived and was answered, so a
//! test can say which requests a command made, how much it read and which of them waited for
//! others (`Proxy::take_seen`, [`rounds`]). Test code only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The request line and headers of one request.
#[derive(Debug, Clone)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A DynamoDB call (`x-amz-target: DynamoDB_20120810.<op>`).
    pub fn dynamodb(&self, op: &str) -> bool {
        self.header("x-amz-target")
            .is_some_and(|t| t.ends_with(&format!(".{op}")))
    }

    fn path_and_query(&self) -> (&str, &str) {
        self.target.split_once('?').unwrap_or((&self.target, ""))
    }

    /// A GET or PUT of the object `key` itself (no sub-resource such as `?tagging`).
    pub fn object(&self, method: &str, key: &str) -> bool {
        let (path, query) = self.path_and_query();
        let plain = query.is_empty()
            || query
                .split('&')
                .all(|p| p.starts_with("versionId=") || p.starts_with("x-id="));
        self.method == method && path.ends_with(&format!("/{key}")) && plain
    }

    /// A ListObjectVersions call.
    pub fn list_versions(&self) -> bool {
        let (_, query) = self.path_and_query();
        self.method == "GET"
            && query
                .split('&')
                .any(|p| p == "versions" || p.starts_with("versions="))
    }

    /// An STS call (a form POST to `/`): terraform's and tfrollback's caller-identity checks.
    pub fn is_sts(&self) -> bool {
        self.method == "POST" && self.path_and_query().0 == "/" && !self.is_dynamodb()
    }

    pub fn is_dynamodb(&self) -> bool {
        self.header("x-amz-target")
            .is_some_and(|t| t.starts_with("DynamoDB"))
    }

    /// The query string's parameter names (`versions`, `versionId`, `versioning`, ...).
    pub fn query_names(&self) -> Vec<&str> {
        let (_, query) = self.path_and_query();
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').map_or(p, |(k, _)| k))
            .collect()
    }

    /// Sent by tfrollback (the AWS SDK for Rust), not by terraform (the SDK for Go) or a test.
    pub fn by_tfrollback(&self) -> bool {
        self.header("user-agent")
            .is_some_and(|ua| ua.contains("aws-sdk-rust"))
    }

    /// The `Range` header, when the request asks for part of a body.
    pub fn range(&self) -> Option<&str> {
        self.header("range")
    }

    /// A short name for logs and assertions: `GET app/terraform.tfstate?versionId bytes=0-65535`.
    pub fn describe(&self) -> String {
        let (path, _) = self.path_and_query();
        let mut out = format!("{} {}", self.method, path);
        let names = self.query_names();
        if !names.is_empty() {
            out.push('?');
            out.push_str(&names.join("&"));
        }
        if let Some(range) = self.range() {
            out.push(' ');
            out.push_str(range);
        }
        if let Some(target) = self.header("x-amz-target") {
            out.push(' ');
            out.push_str(target);
        }
        out
    }
}

/// One request the proxy forwarded, with the length of its answer's body, and when (since the
/// proxy started) its connection was accepted and its answer was sent.
#[derive(Debug, Clone)]
pub struct Seen {
    pub head: Head,
    pub status: u16,
    pub body_bytes: usize,
    pub arrived: Duration,
    pub answered: Duration,
}

/// The requests in rounds: each request goes in the round after the latest round of a request
/// answered before it arrived, so a request that waited for another's answer is a round later
/// and requests in flight together share one. The number of rounds is how many requests a
/// command made one after the other: what it costs on a link where each takes a round trip.
/// Faithful when every request takes long enough that requests sent together overlap (see
/// [`Fault::Delay`]).
pub fn rounds(seen: &[Seen]) -> Vec<Vec<&Seen>> {
    let mut order: Vec<&Seen> = seen.iter().collect();
    order.sort_by_key(|s| s.arrived);
    let mut round_of: Vec<usize> = vec![];
    for (i, s) in order.iter().enumerate() {
        let after = (0..i)
            .filter(|&j| order[j].answered <= s.arrived)
            .map(|j| round_of[j] + 1)
            .max()
            .unwrap_or(0);
        round_of.push(after);
    }
    let mut out: Vec<Vec<&Seen>> = vec![];
    for (s, r) in order.into_iter().zip(round_of) {
        if out.len() <= r {
            out.resize_with(r + 1, Vec::new);
        }
        out[r].push(s);
    }
    out
}

#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this instead of forwarding (the request never reaches the server).
    Respond {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Forward, then send the answer's head and half its body, and hang up.
    CutMidBody,
    /// Forward (the server acts on the request), then hang up without answering: an answer
    /// lost on the way back, which the client retries.
    LoseAnswer,
    /// Wait this long, then forward.
    Delay(Duration),
}

impl Fault {
    pub fn s3_error(status: u16, code: &str) -> Fault {
        Fault::Respond {
            status,
            content_type: "application/xml",
            body: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message><RequestId>proxy</RequestId></Error>"
            ),
        }
    }

    pub fn dynamodb_error(status: u16, kind: &str) -> Fault {
        Fault::Respond {
            status,
            content_type: "application/x-amz-json-1.0",
            body: format!(
                "{{\"__type\":\"com.amazonaws.dynamodb.v20120810#{kind}\",\"message\":\"injected by the test proxy\"}}"
            ),
        }
    }
}

type Matcher = Box<dyn Fn(&Head) -> bool + Send + Sync>;

pub struct Rule {
    pub name: &'static str,
    matcher: Matcher,
    fault: Fault,
    /// Apply to one matching request in `every` (1: all of them).
    every: u32,
    /// Apply at most this many times.
    times: Option<u32>,
    seen: u32,
    hits: u32,
}

impl Rule {
    pub fn new(
        name: &'static str,
        matcher: impl Fn(&Head) -> bool + Send + Sync + 'static,
        fault: Fault,
    ) -> Rule {
        Rule {
            name,
            matcher: Box::new(matcher),
            fault,
            every: 1,
            times: None,
            seen: 0,
            hits: 0,
        }
    }

    pub fn every(mut self, n: u32) -> Rule {
        self.every = n.max(1);
        self
    }

    pub fn times(mut self, n: u32) -> Rule {
        self.times = Some(n);
        self
    }
}

struct Shared {
    upstream: String,
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    stop: AtomicBool,
    started: Instant,
}

pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy in front of `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            upstream: upstream.trim_start_matches("http://").to_string(),
            rules: Mutex::new(vec![]),
            seen: Mutex::new(vec![]),
            stop: AtomicBool::new(false),
            started: Instant::now(),
        });
        let accept = Arc::clone(&shared);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if accept.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let shared = Arc::clone(&accept);
                std::thread::spawn(move || {
                    let _ = serve(conn, &shared);
                });
            }
        });
        Proxy { endpoint, shared }
    }

    pub fn add(&self, rule: Rule) {
        self.shared.rules.lock().unwrap().push(rule);
    }

    /// Every request forwarded since the start (or the last call), in the order their
    /// answers ended; the log starts afresh, so each command's requests can be told apart.
    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.shared.seen.lock().unwrap())
    }

    /// How many times the rule named `name` injected its fault.
    pub fn hits(&self, name: &str) -> u32 {
        self.shared
            .rules
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.name == name)
            .map(|r| r.hits)
            .sum()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = vec![];
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some(Head {
        method,
        target,
        headers,
    }))
}

/// The body as sent, framing included (`Content-Length` or chunked).
fn read_body(reader: &mut BufReader<TcpStream>, head: &Head) -> std::io::Result<Vec<u8>> {
    let mut body = vec![];
    if head
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            body.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    let mut t = String::new();
                    reader.read_line(&mut t)?;
                    body.extend_from_slice(t.as_bytes());
                    if t.trim().is_empty() {
                        return Ok(body);
                    }
                }
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
        }
    }
    let len: usize = head
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    body.resize(len, 0);
    reader.read_exact(&mut body)?;
    Ok(body)
}

fn serve(conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let arrived = shared.started.elapsed();
    conn.set_read_timeout(Some(Duration::from_mins(1)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut client = conn;
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let body = read_body(&mut reader, &head)?;

    let fault = {
        let mut rules = shared.rules.lock().unwrap();
        let mut chosen = None;
        for rule in rules.iter_mut() {
            if !(rule.matcher)(&head) || rule.times.is_some_and(|t| rule.hits >= t) {
                continue;
            }
            rule.seen += 1;
            if (rule.seen - 1) % rule.every == 0 {
                rule.hits += 1;
                chosen = Some(rule.fault.clone());
                break;
            }
        }
        chosen
    };

    if let Some(Fault::Respond {
        status,
        content_type,
        body,
    }) = &fault
    {
        let answer = format!(
            "HTTP/1.1 {status} Injected\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        client.write_all(answer.as_bytes())?;
        return Ok(());
    }
    if let Some(Fault::Delay(d)) = &fault {
        std::thread::sleep(*d);
    }

    let mut upstream = TcpStream::connect(&shared.upstream)?;
    let mut request = format!("{} {} HTTP/1.1\r\n", head.method, head.target);
    for (k, v) in &head.headers {
        if !k.eq_ignore_ascii_case("connection") {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    request.push_str("connection: close\r\n\r\n");
    upstream.write_all(request.as_bytes())?;
    upstream.write_all(&body)?;
    let mut answer = vec![];
    upstream.read_to_end(&mut answer)?;

    if let Some(Fault::LoseAnswer) = fault {
        let _ = client.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    if let Some(Fault::CutMidBody) = fault {
        let head_end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
            .unwrap_or(answer.len());
        let body_len = answer.len() - head_end;
        client.write_all(&answer[..head_end + body_len / 2])?;
        client.flush()?;
        let _ = client.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    // Taken before the answer goes out: a request the client sends once it has the answer
    // arrives after this.
    let answered = shared.started.elapsed();
    client.write_all(&answer)?;
    record(shared, head, &answer, (arrived, answered));
    Ok(())
}

fn record(shared: &Shared, head: Head, answer: &[u8], (arrived, answered): (Duration, Duration)) {
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |p| p + 4);
    let status = std::str::from_utf8(&answer[..head_end.min(answer.len())])
        .ok()
        .and_then(|h| h.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    shared.seen.lock().unwrap().push(Seen {
        head,
        status,
        body_bytes: answer.len() - head_end,
        arrived,
        answered,
    });
}
