//! A small YAML reader for the CI recipes: block mappings, block sequences, `|` literal blocks
//! and plain or quoted scalars, which is all the recipes use. Anything else is refused loudly,
//! so a recipe that outgrows it fails its test instead of being misread.

/// A node: what the recipes are made of.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Scalar(String),
    Map(Vec<(String, Yaml)>),
    Seq(Vec<Yaml>),
}

impl Yaml {
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    #[track_caller]
    pub fn at(&self, path: &[&str]) -> &Yaml {
        let mut node = self;
        for key in path {
            node = node
                .get(key)
                .unwrap_or_else(|| panic!("the recipe has no `{}`", path.join(".")));
        }
        node
    }

    pub fn str(&self) -> Option<&str> {
        match self {
            Yaml::Scalar(s) => Some(s),
            _ => None,
        }
    }

    #[track_caller]
    pub fn seq(&self) -> &[Yaml] {
        match self {
            Yaml::Seq(items) => items,
            other => panic!("expected a sequence, found {other:?}"),
        }
    }

    #[track_caller]
    pub fn entries(&self) -> &[(String, Yaml)] {
        match self {
            Yaml::Map(entries) => entries,
            other => panic!("expected a mapping, found {other:?}"),
        }
    }
}

struct Line {
    indent: usize,
    text: String,
}

/// Parses a whole document; panics on anything this reader does not handle.
pub fn parse_yaml(source: &str) -> Yaml {
    let mut lines: Vec<Line> = source
        .lines()
        .map(|l| {
            assert!(!l.contains('\t'), "tabs in YAML: {l:?}");
            let text = l.trim_start();
            Line {
                indent: l.len() - text.len(),
                text: text.trim_end().to_string(),
            }
        })
        .collect();
    let mut pos = 0;
    skip_blank(&lines, &mut pos);
    let root = parse_node(&mut lines, &mut pos, 0);
    skip_blank(&lines, &mut pos);
    assert_eq!(
        pos,
        lines.len(),
        "unparsed YAML from line {}: {:?}",
        pos + 1,
        lines.get(pos).map(|l| &l.text)
    );
    root
}

fn is_blank(line: &Line) -> bool {
    line.text.is_empty() || line.text.starts_with('#')
}

fn skip_blank(lines: &[Line], pos: &mut usize) {
    while *pos < lines.len() && is_blank(&lines[*pos]) {
        *pos += 1;
    }
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// `key: rest` or `key:` when the line is a mapping entry.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let (key, rest) = match text.split_once(": ") {
        Some((k, r)) => (k, r),
        None => (text.strip_suffix(':')?, ""),
    };
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    plain.then_some((key, rest.trim()))
}

fn parse_node(lines: &mut [Line], pos: &mut usize, indent: usize) -> Yaml {
    if is_item(&lines[*pos].text) {
        parse_seq(lines, pos, indent)
    } else {
        parse_map(lines, pos, indent)
    }
}

fn parse_seq(lines: &mut [Line], pos: &mut usize, indent: usize) -> Yaml {
    let mut items = vec![];
    loop {
        skip_blank(lines, pos);
        if *pos >= lines.len() || lines[*pos].indent != indent || !is_item(&lines[*pos].text) {
            break;
        }
        let rest = lines[*pos].text[1..].trim_start().to_string();
        let inner = indent + 2;
        if rest.is_empty() {
            *pos += 1;
            skip_blank(lines, pos);
            items.push(parse_node(lines, pos, lines[*pos].indent));
        } else if split_key(&rest).is_some() && !rest.starts_with(['"', '\'']) {
            // `- key: value` starts a mapping whose entries continue at the item's column.
            lines[*pos] = Line {
                indent: inner,
                text: rest,
            };
            items.push(parse_map(lines, pos, inner));
        } else {
            items.push(scalar_or_block(lines, pos, indent, &rest));
        }
    }
    Yaml::Seq(items)
}

fn parse_map(lines: &mut [Line], pos: &mut usize, indent: usize) -> Yaml {
    let mut entries = vec![];
    loop {
        skip_blank(lines, pos);
        if *pos >= lines.len() || lines[*pos].indent != indent || is_item(&lines[*pos].text) {
            break;
        }
        let text = lines[*pos].text.clone();
        let (key, rest) =
            split_key(&text).unwrap_or_else(|| panic!("not a YAML mapping entry: {text:?}"));
        let value = if rest.is_empty() || rest.starts_with('#') {
            *pos += 1;
            skip_blank(lines, pos);
            match lines.get(*pos) {
                Some(next) if next.indent > indent => {
                    let child = next.indent;
                    parse_node(lines, pos, child)
                }
                Some(next) if next.indent == indent && is_item(&next.text) => {
                    parse_seq(lines, pos, indent)
                }
                _ => Yaml::Scalar(String::new()),
            }
        } else {
            scalar_or_block(lines, pos, indent, rest)
        };
        entries.push((key.to_string(), value));
    }
    Yaml::Map(entries)
}

/// A scalar on the current line, or the `|` literal block that follows it.
fn scalar_or_block(lines: &[Line], pos: &mut usize, indent: usize, value: &str) -> Yaml {
    *pos += 1;
    if value != "|" {
        assert!(
            !value.starts_with(['|', '>', '{', '&', '*', '!']),
            "YAML this reader does not handle: {value:?}"
        );
        return Yaml::Scalar(plain_scalar(value));
    }
    let mut block: Vec<&Line> = vec![];
    while *pos < lines.len() && (lines[*pos].text.is_empty() || lines[*pos].indent > indent) {
        block.push(&lines[*pos]);
        *pos += 1;
    }
    while block.last().is_some_and(|l| l.text.is_empty()) {
        block.pop();
    }
    let strip = block
        .iter()
        .filter(|l| !l.text.is_empty())
        .map(|l| l.indent)
        .min()
        .unwrap_or(0);
    let mut text = String::new();
    for line in block {
        if !line.text.is_empty() {
            text.push_str(&" ".repeat(line.indent - strip));
            text.push_str(&line.text);
        }
        text.push('\n');
    }
    Yaml::Scalar(text)
}

fn plain_scalar(value: &str) -> String {
    if let Some(body) = value.strip_prefix('"') {
        let end = body.find('"').expect("closing double quote");
        assert!(!body[..end].contains('\\'), "escapes in {value:?}");
        return body[..end].to_string();
    }
    if let Some(body) = value.strip_prefix('\'') {
        let end = body.find('\'').expect("closing single quote");
        return body[..end].to_string();
    }
    match value.find(" #") {
        Some(at) => value[..at].trim_end().to_string(),
        None => value.to_string(),
    }
}
