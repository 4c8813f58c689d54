//! The classic LXC image index, `meta/1.0/index-system`: one image per line,
//! `dist;release;arch;variant;build;path`. Pure parsing and matching, no I/O.

use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dist: String,
    pub release: String,
    pub arch: String,
    pub variant: String,
    pub build: String,
    /// Server path of the build directory, checked to stay under the server root.
    pub path: String,
}

/// A line that was not used, and why. Reported, never followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub line_no: usize,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Index {
    pub entries: Vec<Entry>,
    pub malformed: Vec<Malformed>,
}

/// What the user asked for; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub dist: Option<String>,
    pub release: Option<String>,
    pub arch: Option<String>,
    pub variant: Option<String>,
}

/// A field may hold letters, digits and `._-:+`; the build id has a colon.
fn field_ok(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= 128
        && f.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '+'))
        && f != "."
        && f != ".."
}

/// A build path must be absolute on the server, with plain components only.
pub fn path_ok(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("path {p:?} is not absolute"));
    }
    if p.contains("://")
        || p.contains('\\')
        || p.contains('?')
        || p.contains('#')
        || p.contains('%')
    {
        return Err(format!("path {p:?} has characters that are not allowed"));
    }
    let trimmed = p.trim_matches('/');
    if trimmed.is_empty() {
        return Err("path is the server root".into());
    }
    for c in trimmed.split('/') {
        if c.is_empty() || c == "." || c == ".." || !field_ok(c) {
            return Err(format!(
                "path {p:?} leaves the server root or has a bad component {c:?}"
            ));
        }
    }
    Ok(())
}

pub fn parse(text: &str) -> Index {
    let mut idx = Index::default();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(e) => idx.entries.push(e),
            Err(reason) => idx.malformed.push(Malformed { line_no, reason }),
        }
    }
    idx
}

fn parse_line(line: &str) -> Result<Entry, String> {
    let f: Vec<&str> = line.split(';').collect();
    if f.len() != 6 {
        return Err(format!("{} fields instead of 6", f.len()));
    }
    for (name, v) in ["dist", "release", "arch", "variant", "build"]
        .iter()
        .zip(&f)
    {
        if !field_ok(v) {
            return Err(format!("bad {name} {v:?}"));
        }
    }
    path_ok(f[5])?;
    Ok(Entry {
        dist: f[0].into(),
        release: f[1].into(),
        arch: f[2].into(),
        variant: f[3].into(),
        build: f[4].into(),
        path: f[5].into(),
    })
}

fn matches(want: &Option<String>, have: &str) -> bool {
    want.as_deref().is_none_or(|w| w == have)
}

impl Index {
    pub fn filter<'a>(&'a self, q: &'a Query) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| {
            matches(&q.dist, &e.dist)
                && matches(&q.release, &e.release)
                && matches(&q.arch, &e.arch)
                && matches(&q.variant, &e.variant)
        })
    }

    /// The one image for a fully specified query. Index files list only the newest build
    /// per tuple, but if a mirror lists several, the highest build id wins.
    pub fn find<'a>(&'a self, q: &'a Query) -> Option<&'a Entry> {
        self.filter(q).max_by(|a, b| a.build.cmp(&b.build))
    }

    pub fn dists(&self) -> BTreeSet<&str> {
        self.entries.iter().map(|e| e.dist.as_str()).collect()
    }

    /// Explain a miss: what the index has near what was asked.
    pub fn explain_miss(&self, q: &Query) -> String {
        let dist = q.dist.as_deref().unwrap_or("");
        let same_dist: Vec<&Entry> = self.entries.iter().filter(|e| e.dist == dist).collect();
        if same_dist.is_empty() {
            let near: Vec<&str> = self
                .dists()
                .into_iter()
                .filter(|d| similar(d, dist))
                .collect();
            let all: Vec<&str> = self.dists().into_iter().collect();
            let mut s = format!("the index has no distribution {dist:?}");
            if !near.is_empty() {
                s += &format!("; did you mean {}?", near.join(", "));
            }
            s += &format!("\navailable distributions: {}", all.join(" "));
            return s;
        }
        // Group the dist's releases with the arches and variants they come in.
        let mut lines = Vec::new();
        let releases: BTreeSet<&str> = same_dist.iter().map(|e| e.release.as_str()).collect();
        for r in releases {
            let arches: BTreeSet<&str> = same_dist
                .iter()
                .filter(|e| e.release == r)
                .map(|e| e.arch.as_str())
                .collect();
            let variants: BTreeSet<&str> = same_dist
                .iter()
                .filter(|e| e.release == r)
                .map(|e| e.variant.as_str())
                .collect();
            lines.push(format!(
                "  {dist} {r}  arch: {}  variant: {}",
                arches.into_iter().collect::<Vec<_>>().join(", "),
                variants.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        format!("{dist} is available as:\n{}", lines.join("\n"))
    }
}

/// Cheap "did you mean": shared prefix, containment or edit distance ≤ 2.
fn similar(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    if a.is_empty() || b.is_empty() {
        return false;
    }
    a.contains(&b) || b.contains(&a) || levenshtein(&a, &b) <= 2
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
centos;9-Stream;amd64;default;20261122_07:08;/images/centos/9-Stream/amd64/default/20261122_07:08/
centos;9-Stream;arm64;default;20261122_07:08;/images/centos/9-Stream/arm64/default/20261122_07:08/
centos;10-Stream;amd64;default;20261122_07:10;/images/centos/10-Stream/amd64/default/20261122_07:10/
debian;bookworm;amd64;default;20261120_05:24;/images/debian/bookworm/amd64/default/20261120_05:24/
debian;bookworm;amd64;cloud;20261120_05:24;/images/debian/bookworm/amd64/cloud/20261120_05:24/
almalinux;9;arm64;cloud;20240929_23:08;/images/almalinux/9/arm64/cloud/20240929_23:08/
";

    #[test]
    fn parses_real_lines() {
        let idx = parse(SAMPLE);
        assert_eq!(idx.entries.len(), 6);
        assert!(idx.malformed.is_empty());
        let e = &idx.entries[3];
        assert_eq!(
            (
                e.dist.as_str(),
                e.release.as_str(),
                e.arch.as_str(),
                e.variant.as_str(),
                e.build.as_str()
            ),
            ("debian", "bookworm", "amd64", "default", "20261120_05:24")
        );
    }

    #[test]
    fn malformed_lines_are_reported_not_followed() {
        let text = "\
debian;bookworm;amd64;default;20261120_05:24
evil;1;amd64;default;b1;/images/../../etc/
evil;2;amd64;default;b1;images/relative/
evil;3;amd64;default;b1;https://elsewhere.example/x/
evil;4;amd64;default;b1;/
evil;5;amd64;default;b1;/images/%2e%2e/x/
evil;../x;amd64;default;b1;/images/x/
debian;bookworm;amd64;default;20261120_05:24;/images/debian/bookworm/amd64/default/20261120_05:24/;extra
ok;1;amd64;default;b1;/images/ok/1/amd64/default/b1/
";
        let idx = parse(text);
        assert_eq!(idx.entries.len(), 1, "{:?}", idx.entries);
        assert_eq!(idx.entries[0].dist, "ok");
        assert_eq!(idx.malformed.len(), 8);
        assert_eq!(idx.malformed[0].line_no, 1);
        assert!(idx.malformed[0].reason.contains("5 fields"));
    }

    #[test]
    fn finds_exact_and_defaults_variant() {
        let idx = parse(SAMPLE);
        let q = Query {
            dist: Some("debian".into()),
            release: Some("bookworm".into()),
            arch: Some("amd64".into()),
            variant: Some("default".into()),
        };
        assert_eq!(idx.find(&q).unwrap().variant, "default");
    }

    #[test]
    fn centos_7_miss_lists_stream_releases() {
        let idx = parse(SAMPLE);
        let q = Query {
            dist: Some("centos".into()),
            release: Some("7".into()),
            arch: Some("amd64".into()),
            variant: Some("default".into()),
        };
        assert!(idx.find(&q).is_none());
        let m = idx.explain_miss(&q);
        assert!(m.contains("9-Stream") && m.contains("10-Stream"), "{m}");
        assert!(m.contains("amd64, arm64"), "{m}");
    }

    #[test]
    fn unknown_dist_suggests_near_names() {
        let idx = parse(SAMPLE);
        let q = Query {
            dist: Some("debain".into()),
            ..Default::default()
        };
        let m = idx.explain_miss(&q);
        assert!(m.contains("did you mean debian"), "{m}");
        assert!(m.contains("almalinux centos debian"), "{m}");
    }
}
