//! `rlxc-config`: one key of a TOML config read, or set in the file's text so that its
//! comments and layout stay (a line replaced or added). Whether the result is a valid
//! config is for the caller to decide with the file's own typed loader, before the
//! text is written.
//!
//! Keys are dotted: `hostname`, `limits.memory`, `network.bridge`; an element of an
//! array of tables by its index, `network.0.ipv4` (or `network[0].ipv4`).

use std::path::Path;

use toml::{Table, Value};

use crate::error::{Error, Result};

/// `network[0].ipv4` → `network.0.ipv4`.
pub fn normalise(key: &str) -> String {
    key.replace('[', ".")
        .replace(']', "")
        .trim_matches('.')
        .to_string()
}

/// The value at `key` in `text`, None if it is not set. Strings come without quotes
/// (for scripts), everything else as TOML writes it.
pub fn get(text: &str, key: &str) -> Result<Option<String>, String> {
    let doc: Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
    let mut at: Option<&Value> = None;
    for (i, part) in normalise(key).split('.').enumerate() {
        let next = match (i, at) {
            (0, _) => doc.get(part),
            (_, Some(Value::Table(t))) => t.get(part),
            (_, Some(Value::Array(a))) => part.parse::<usize>().ok().and_then(|n| a.get(n)),
            _ => None,
        };
        match next {
            Some(v) => at = Some(v),
            None => return Ok(None),
        }
    }
    Ok(at.map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }))
}

/// Every key set in `text` with its value as TOML writes it, sorted by key
/// (`network.0.type = "veth"`).
pub fn all(text: &str) -> Result<Vec<(String, String)>, String> {
    let doc: Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
    let mut out = Vec::new();
    flatten("", &Value::Table(doc), &mut out);
    Ok(out)
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Table(t) => t.iter().for_each(|(k, v)| flatten(&join(k), v, out)),
        Value::Array(a) if a.iter().all(|e| e.is_table()) && !a.is_empty() => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| flatten(&join(&i.to_string()), v, out)),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// `value` as a TOML value: itself when it is one (`true`, `10`, `"x"`, `["a"]`),
/// else a string (`1G`, `/srv`).
pub fn literal(value: &str) -> String {
    if toml::from_str::<Table>(&format!("x = {value}")).is_ok() {
        value.to_string()
    } else {
        Value::String(value.to_string()).to_string()
    }
}

/// `value` as a TOML string, whatever it looks like.
pub fn string_literal(value: &str) -> String {
    Value::String(value.to_string()).to_string()
}

/// Where a line is: the table it belongs to (`""` the root, `limits`, `network.1`).
fn sections(text: &str) -> Vec<String> {
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut current = String::new();
    text.lines()
        .map(|l| {
            let t = l.trim();
            if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
                let name = name.trim().to_string();
                let n = counts.entry(name.clone()).or_default();
                current = format!("{name}.{n}");
                *n += 1;
            } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
                current = name.trim().to_string();
            }
            current.clone()
        })
        .collect()
}

fn is_header(line: &str) -> bool {
    line.trim_start().starts_with('[')
}

/// The key a `key = value` line sets.
fn key_of(line: &str) -> Option<String> {
    let t = line.trim_start();
    if t.starts_with('#') || t.starts_with('[') {
        return None;
    }
    let (k, _) = t.split_once('=')?;
    Some(k.trim().trim_matches('"').trim_matches('\'').to_string())
}

/// A value that goes on past its line: a multi-line string or array.
fn spans_lines(line: &str) -> bool {
    let v = line.split_once('=').map_or("", |(_, v)| v).trim();
    let opens = v.matches('[').count() + v.matches('{').count();
    let closes = v.matches(']').count() + v.matches('}').count();
    v.starts_with("\"\"\"") || v.starts_with("'''") || opens > closes
}

/// `text` with `key` set to `value` (a TOML literal): its line replaced, or added to
/// its table (made at the end when missing). Comments and other lines stay as they are.
pub fn set(text: &str, key: &str, value: &str) -> Result<String, String> {
    let key = normalise(key);
    let (table, leaf) = match key.rsplit_once('.') {
        Some((t, l)) => (t.to_string(), l.to_string()),
        None => (String::new(), key.clone()),
    };
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let secs = sections(text);
    let new_line = format!("{leaf} = {value}");
    let here: Vec<usize> = (0..lines.len()).filter(|i| secs[*i] == table).collect();
    if let Some(&i) = here
        .iter()
        .find(|i| key_of(&lines[**i]).as_deref() == Some(leaf.as_str()))
    {
        if spans_lines(&lines[i]) {
            return Err(format!(
                "`{key}` spans several lines in the file: change it there"
            ));
        }
        let indent: String = lines[i].chars().take_while(|c| c.is_whitespace()).collect();
        lines[i] = format!("{indent}{new_line}");
    } else if table.is_empty() {
        // After the root's last key, before the first table.
        let first_table = lines.iter().position(|l| is_header(l));
        let at = first_table.unwrap_or(lines.len());
        let after_keys = (0..at)
            .rev()
            .find(|i| key_of(&lines[*i]).is_some())
            .map_or(0, |i| i + 1);
        lines.insert(after_keys, new_line);
    } else if let Some(&last) = here.last() {
        // The table is there: after its last key (or its header).
        let at = (here[0]..=last)
            .rev()
            .find(|i| key_of(&lines[*i]).is_some() || is_header(&lines[*i]))
            .map_or(last + 1, |i| i + 1);
        lines.insert(at, new_line);
    } else if let Some((array, n)) = table
        .rsplit_once('.')
        .filter(|(_, n)| n.parse::<usize>().is_ok())
    {
        return Err(format!(
            "there is no [[{array}]] number {n} (counting from 0) to set `{leaf}` in"
        ));
    } else {
        if lines.last().is_some_and(|l| !l.trim().is_empty()) {
            lines.push(String::new());
        }
        lines.push(format!("[{table}]"));
        lines.push(new_line);
    }
    Ok(lines.join("\n") + "\n")
}

/// The text of `file` with `key` set to `value` as the user typed it, checked by
/// `check` (the file's typed loader) before anyone writes it: as a TOML literal first
/// (`true`, `10`), then as a string (`"10"` for a key that wants one). An unknown key
/// is named with the keys nearest to it.
pub fn apply(
    file: &Path,
    text: &str,
    key: &str,
    value: &str,
    check: &dyn Fn(&str) -> Result<()>,
) -> Result<String> {
    let attempt = |lit: &str| -> Result<String> {
        let t = set(text, key, lit).map_err(|msg| config_error(file, msg))?;
        check(&t)?;
        Ok(t)
    };
    let raw = literal(value);
    let first = match attempt(&raw) {
        Ok(t) => return Ok(t),
        Err(e) => e,
    };
    let quoted = string_literal(value);
    if quoted != raw {
        if let Ok(t) = attempt(&quoted) {
            return Ok(t);
        }
    }
    Err(unknown_key(file, key, first))
}

/// The value of `key` in `text`; None when it is not set (its default applies). A key
/// the config does not have is an error naming the nearest ones.
pub fn lookup(
    file: &Path,
    text: &str,
    key: &str,
    check: &dyn Fn(&str) -> Result<()>,
) -> Result<Option<String>> {
    if let Some(v) = get(text, key).map_err(|msg| config_error(file, msg))? {
        return Ok(Some(v));
    }
    // Set to anything: a key the config has complains of the value's type at most.
    match set(text, key, "0").map(|t| check(&t)) {
        Ok(Err(e)) if e.to_string().contains("unknown field") => Err(unknown_key(file, key, e)),
        _ => Ok(None),
    }
}

/// Every key set in `text`.
pub fn listing(file: &Path, text: &str) -> Result<Vec<(String, String)>> {
    all(text).map_err(|msg| config_error(file, msg))
}

fn config_error(file: &Path, msg: String) -> Error {
    Error::Config {
        file: file.to_path_buf(),
        msg,
    }
}

/// serde's "unknown field `x`, expected one of …" as the key and its neighbours.
fn unknown_key(file: &Path, key: &str, e: Error) -> Error {
    let msg = match &e {
        Error::Config { msg, .. } if msg.contains("unknown field") => msg.clone(),
        _ => return e,
    };
    let key = normalise(key);
    let (table, leaf) = key.rsplit_once('.').unwrap_or(("", key.as_str()));
    let near: Vec<String> = near_keys(&msg, leaf)
        .into_iter()
        .take(5)
        .map(|k| {
            if table.is_empty() {
                k
            } else {
                format!("{table}.{k}")
            }
        })
        .collect();
    config_error(
        file,
        if near.is_empty() {
            format!("no key `{key}` in this file: {msg}")
        } else {
            format!(
                "no key `{key}` in this file; near ones: {}",
                near.join(", ")
            )
        },
    )
}

/// The keys serde named as the valid ones in an unknown-field error, nearest to `leaf`
/// first: a typo's neighbours.
pub fn near_keys(message: &str, leaf: &str) -> Vec<String> {
    let Some((_, expected)) = message.split_once("expected") else {
        return Vec::new();
    };
    let mut keys: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    keys.sort_by_key(|k| distance(k, leaf));
    keys
}

/// Edit distance (Levenshtein) of two short keys.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# top comment\nlxcpath = \"/var/lib/rlxc\"\n\n[download]\n# the server\nserver = \"a\"\n\n[[network]]\ntype = \"veth\"\n\n[[network]]\ntype = \"empty\"\n";

    #[test]
    fn a_key_is_replaced_in_place_and_comments_stay() {
        let t = set(FILE, "download.server", "\"b\"").unwrap();
        assert!(t.contains("# the server\nserver = \"b\"\n"), "{t}");
        assert!(t.starts_with("# top comment\n"));
        let t = set(FILE, "network[1].type", "\"veth\"").unwrap();
        assert_eq!(get(&t, "network.1.type").unwrap().as_deref(), Some("veth"));
        assert_eq!(get(&t, "network.0.type").unwrap().as_deref(), Some("veth"));
    }

    #[test]
    fn a_missing_key_goes_into_its_table_or_a_new_one() {
        let t = set(FILE, "runpath", "\"/run/x\"").unwrap();
        assert!(
            t.contains("lxcpath = \"/var/lib/rlxc\"\nrunpath = \"/run/x\"\n"),
            "{t}"
        );
        let t = set(FILE, "download.max_image_size", "\"1G\"").unwrap();
        assert!(
            t.contains("server = \"a\"\nmax_image_size = \"1G\"\n"),
            "{t}"
        );
        let t = set(FILE, "limits.memory", &literal("1G")).unwrap();
        assert!(t.ends_with("\n[limits]\nmemory = \"1G\"\n"), "{t}");
        assert_eq!(get(&t, "limits.memory").unwrap().as_deref(), Some("1G"));
        let t = set(FILE, "network.0.mtu", "1400").unwrap();
        assert_eq!(get(&t, "network.0.mtu").unwrap().as_deref(), Some("1400"));
        let e = set(FILE, "network.5.mtu", "1400").unwrap_err();
        assert!(e.contains("[[network]] number 5"), "{e}");
    }

    #[test]
    fn values_are_literals_when_they_are_and_strings_else() {
        assert_eq!(literal("true"), "true");
        assert_eq!(literal("10"), "10");
        assert_eq!(literal("1G"), "\"1G\"");
        assert_eq!(literal("/srv/x"), "\"/srv/x\"");
        assert_eq!(literal("[\"a\"]"), "[\"a\"]");
    }

    #[test]
    fn all_keys_flattened() {
        let keys: Vec<String> = all(FILE).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "download.server",
                "lxcpath",
                "network.0.type",
                "network.1.type"
            ]
        );
    }

    #[test]
    fn a_multi_line_value_is_left_to_the_editor() {
        let t = "cmd = [\n  \"/sbin/init\",\n]\n";
        assert!(set(t, "cmd", "[]").unwrap_err().contains("several lines"));
    }

    #[test]
    fn near_keys_come_first() {
        let m = "unknown field `memry`, expected one of `cpus`, `memory`, `memory_swap`, `pids`";
        assert_eq!(near_keys(m, "memry")[0], "memory");
    }
}
