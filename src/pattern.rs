//! Regular expressions for `rlxc-ls FILTER` and `rlxc-monitor -n REGEX`, as LXC takes
//! them (POSIX extended syntax: `.`, `[a-z]`, `[^…]`, `*`, `+`, `?`, `{m,n}`, `|`,
//! groups, `^`, `$`, and `\d \w \s` for convenience). Compiled to a small program run as
//! a Pike VM (every thread advanced in step): time linear in the name, whatever the
//! pattern, so no pattern a user types can make a listing hang.

use std::fmt;

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    prog: Vec<Inst>,
    source: String,
}

/// Why a pattern is not one: the message names the pattern and the place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Repetition counts beyond this are refused (the program grows with them).
const MAX_REPEAT: u32 = 100;
/// Patterns are a line typed on a command line.
const MAX_LEN: usize = 1000;

#[derive(Debug, Clone)]
enum Set {
    Any,
    Ranges {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

impl Set {
    fn one(c: char) -> Set {
        Set::Ranges {
            negated: false,
            items: vec![(c, c)],
        }
    }

    fn matches(&self, c: char) -> bool {
        match self {
            Set::Any => true,
            Set::Ranges { negated, items } => {
                items.iter().any(|(a, b)| (*a..=*b).contains(&c)) != *negated
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Node {
    Set(Set),
    Bol,
    Eol,
    Cat(Vec<Node>),
    Alt(Vec<Node>),
    Rep {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

#[derive(Debug, Clone)]
enum Inst {
    Set(Set),
    Bol,
    Eol,
    Split(usize, usize),
    Jmp(usize),
    Match,
}

struct Parser<'a> {
    chars: Vec<char>,
    at: usize,
    source: &'a str,
}

impl Parser<'_> {
    fn fail<T>(&self, why: &str) -> Result<T, PatternError> {
        Err(PatternError(format!(
            "the pattern {:?} {why} (at character {})",
            self.source,
            self.at + 1
        )))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.at += 1;
        c
    }

    fn alt(&mut self) -> Result<Node, PatternError> {
        let mut branches = vec![self.concat()?];
        while self.peek() == Some('|') {
            self.at += 1;
            branches.push(self.concat()?);
        }
        Ok(if branches.len() == 1 {
            branches.remove(0)
        } else {
            Node::Alt(branches)
        })
    }

    fn concat(&mut self) -> Result<Node, PatternError> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(Node::Cat(items))
    }

    fn quantified(&mut self, mut node: Node) -> Result<Node, PatternError> {
        loop {
            let simple = match self.peek() {
                Some('*') => Some((0, None)),
                Some('+') => Some((1, None)),
                Some('?') => Some((0, Some(1))),
                Some('{') => None,
                _ => return Ok(node),
            };
            self.at += 1;
            let (min, max) = match simple {
                Some(b) => b,
                None => self.bounds()?,
            };
            if matches!(node, Node::Bol | Node::Eol) {
                return self.fail("repeats an anchor");
            }
            node = Node::Rep {
                node: Box::new(node),
                min,
                max,
            };
        }
    }

    /// `m}`, `m,}` or `m,n}` after a `{`.
    fn bounds(&mut self) -> Result<(u32, Option<u32>), PatternError> {
        let min = self.number()?;
        let max = if self.peek() == Some(',') {
            self.at += 1;
            if self.peek() == Some('}') {
                None
            } else {
                Some(self.number()?)
            }
        } else {
            Some(min)
        };
        if self.next() != Some('}') {
            return self.fail("has a `{` without its `}`");
        }
        if max.is_some_and(|m| m < min) || min > MAX_REPEAT || max.unwrap_or(0) > MAX_REPEAT {
            return self.fail(&format!(
                "has a repetition other than {{m,n}} with m <= n <= {MAX_REPEAT}"
            ));
        }
        Ok((min, max))
    }

    fn number(&mut self) -> Result<u32, PatternError> {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        let digits: String = self.chars[start..self.at].iter().collect();
        match digits.parse() {
            Ok(n) => Ok(n),
            Err(_) => self.fail("has a repetition count that is not a number"),
        }
    }

    fn atom(&mut self) -> Result<Node, PatternError> {
        match self.next() {
            Some('(') => {
                let inner = self.alt()?;
                if self.next() != Some(')') {
                    return self.fail("has a `(` without its `)`");
                }
                Ok(inner)
            }
            Some('[') => self.class(),
            Some('.') => Ok(Node::Set(Set::Any)),
            Some('^') => Ok(Node::Bol),
            Some('$') => Ok(Node::Eol),
            Some('\\') => match self.next() {
                Some(c) => Ok(Node::Set(escape(c))),
                None => self.fail("ends with a `\\`"),
            },
            Some(c @ ('*' | '+' | '?' | '{')) => {
                self.at -= 1;
                self.fail(&format!("has a `{c}` with nothing before it to repeat"))
            }
            Some(c) => Ok(Node::Set(Set::one(c))),
            None => self.fail("ends early"),
        }
    }

    /// After `[`: `^`? then items up to `]` (a `]` first is a member).
    fn class(&mut self) -> Result<Node, PatternError> {
        let negated = self.peek() == Some('^');
        if negated {
            self.at += 1;
        }
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let c = match self.next() {
                None => return self.fail("has a `[` without its `]`"),
                Some(']') if !first => break,
                Some('\\') => match self.next() {
                    Some(e) => {
                        if let Set::Ranges { items: more, .. } = escape(e) {
                            items.extend(more);
                        }
                        first = false;
                        continue;
                    }
                    None => return self.fail("ends with a `\\`"),
                },
                Some(c) => c,
            };
            first = false;
            if self.peek() == Some('-') && self.chars.get(self.at + 1).is_some_and(|n| *n != ']') {
                self.at += 1;
                let hi = self.next().unwrap_or(c);
                if hi < c {
                    return self.fail(&format!("has the range {c}-{hi} backwards"));
                }
                items.push((c, hi));
            } else {
                items.push((c, c));
            }
        }
        Ok(Node::Set(Set::Ranges { negated, items }))
    }
}

/// `\d`, `\w`, `\s`, or the character itself (`\.`).
fn escape(c: char) -> Set {
    let items = match c {
        'd' => vec![('0', '9')],
        'w' => vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')],
        's' => vec![(' ', ' '), ('\t', '\r')],
        c => vec![(c, c)],
    };
    Set::Ranges {
        negated: false,
        items,
    }
}

fn emit(node: &Node, prog: &mut Vec<Inst>) {
    match node {
        Node::Set(s) => prog.push(Inst::Set(s.clone())),
        Node::Bol => prog.push(Inst::Bol),
        Node::Eol => prog.push(Inst::Eol),
        Node::Cat(items) => items.iter().for_each(|n| emit(n, prog)),
        Node::Alt(branches) => {
            // split L1, next; L1: a; jmp end; next: split L2, … ; last: z; end:
            let mut jumps = Vec::new();
            for (i, b) in branches.iter().enumerate() {
                if i + 1 < branches.len() {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    emit(b, prog);
                    jumps.push(prog.len());
                    prog.push(Inst::Jmp(0));
                    let next = prog.len();
                    prog[split] = Inst::Split(split + 1, next);
                } else {
                    emit(b, prog);
                }
            }
            let end = prog.len();
            for j in jumps {
                prog[j] = Inst::Jmp(end);
            }
        }
        Node::Rep { node, min, max } => {
            for _ in 0..*min {
                emit(node, prog);
            }
            match max {
                None => {
                    // L: split body, end; body; jmp L; end:
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    emit(node, prog);
                    prog.push(Inst::Jmp(split));
                    let end = prog.len();
                    prog[split] = Inst::Split(split + 1, end);
                }
                Some(max) => {
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(prog.len());
                        prog.push(Inst::Split(prog.len() + 1, 0));
                        emit(node, prog);
                    }
                    let end = prog.len();
                    for s in splits {
                        prog[s] = Inst::Split(s + 1, end);
                    }
                }
            }
        }
    }
}

impl Pattern {
    pub fn new(source: &str) -> Result<Self, PatternError> {
        if source.len() > MAX_LEN {
            return Err(PatternError(format!(
                "a pattern of {} bytes is longer than the {MAX_LEN} allowed",
                source.len()
            )));
        }
        let mut p = Parser {
            chars: source.chars().collect(),
            at: 0,
            source,
        };
        let node = p.alt()?;
        if p.at < p.chars.len() {
            return p.fail("has a `)` without its `(`");
        }
        let mut prog = Vec::new();
        emit(&node, &mut prog);
        prog.push(Inst::Match);
        Ok(Pattern {
            prog,
            source: source.to_string(),
        })
    }

    /// The pattern matches anywhere in `text` (as `grep -E`, LXC's lxc-ls FILTER).
    pub fn is_match(&self, text: &str) -> bool {
        self.run(text, false)
    }

    /// The pattern matches the whole of `text` (as lxc-monitor's `-n`, `^(…)$`).
    pub fn matches_all(&self, text: &str) -> bool {
        self.run(text, true)
    }

    fn run(&self, text: &str, whole: bool) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let mut current: Vec<usize> = Vec::new();
        let mut seen = vec![usize::MAX; self.prog.len()];
        self.add(&mut current, &mut seen, 0, 0, chars.len());
        for (i, c) in chars.iter().enumerate() {
            if !whole
                && current
                    .iter()
                    .any(|pc| matches!(self.prog[*pc], Inst::Match))
            {
                return true;
            }
            let mut next = Vec::new();
            for pc in &current {
                if let Inst::Set(s) = &self.prog[*pc] {
                    if s.matches(*c) {
                        self.add(&mut next, &mut seen, pc + 1, i + 1, chars.len());
                    }
                }
            }
            if !whole {
                // A search: a match may also begin at the next character.
                self.add(&mut next, &mut seen, 0, i + 1, chars.len());
            }
            current = next;
        }
        current
            .iter()
            .any(|pc| matches!(self.prog[*pc], Inst::Match))
    }

    /// Follow jumps, splits and anchors from `pc` at position `at`; keep the threads
    /// that wait on a character (or match). `seen[pc] == at` marks it done this step.
    fn add(&self, list: &mut Vec<usize>, seen: &mut [usize], pc: usize, at: usize, len: usize) {
        if seen[pc] == at {
            return;
        }
        seen[pc] = at;
        match &self.prog[pc] {
            Inst::Jmp(t) => self.add(list, seen, *t, at, len),
            Inst::Split(a, b) => {
                self.add(list, seen, *a, at, len);
                self.add(list, seen, *b, at, len);
            }
            Inst::Bol if at == 0 => self.add(list, seen, pc + 1, at, len),
            Inst::Eol if at == len => self.add(list, seen, pc + 1, at, len),
            Inst::Bol | Inst::Eol => {}
            Inst::Set(_) | Inst::Match => list.push(pc),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn search(p: &str, t: &str) -> bool {
        Pattern::new(p).unwrap().is_match(t)
    }

    fn whole(p: &str, t: &str) -> bool {
        Pattern::new(p).unwrap().matches_all(t)
    }

    #[test]
    fn searches_as_grep_does() {
        assert!(search("web", "myweb1"));
        assert!(search("^web[0-9]+$", "web12"));
        assert!(!search("^web[0-9]+$", "web12a"));
        assert!(search("db|web", "db1"));
        assert!(!search("db|web", "cache"));
        assert!(search("", "anything"));
        assert!(search("a.c", "xxabcxx"));
        assert!(search(r"\.", "a.b") && !search(r"\.", "ab"));
        assert!(search("^(ab)+$", "ababab") && !search("^(ab)+$", "ababa"));
        assert!(search("^x{2,3}$", "xxx") && !search("^x{2,3}$", "xxxx"));
        assert!(search("^x{2}$", "xx") && !search("^x{2}$", "x"));
        assert!(search("[^a-c]", "abcd") && !search("^[^a-c]+$", "abc"));
        assert!(search(r"^\w+-\d$", "web_a-1"));
        assert!(search("colou?r", "color") && search("colou?r", "colour"));
    }

    #[test]
    fn monitor_names_match_whole() {
        assert!(whole("web.*", "web1"));
        assert!(!whole("web", "web1"));
        assert!(whole("web1|db1", "db1"));
        assert!(!whole("web1|db1", "db10"));
    }

    #[test]
    fn pathological_patterns_stay_linear() {
        let name = "a".repeat(64) + "b";
        let t0 = std::time::Instant::now();
        assert!(!whole("(a*)*c", &name));
        assert!(!whole("(a|aa)*c", &name));
        assert!(t0.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn bad_patterns_say_where() {
        for (p, why) in [
            ("(ab", "without its `)`"),
            ("ab)", "without its `(`"),
            ("[ab", "without its `]`"),
            ("*a", "nothing before it"),
            ("a{3,1}", "repetition"),
            ("a{500}", "repetition"),
            ("[z-a]", "backwards"),
            ("a\\", "ends with"),
        ] {
            let e = Pattern::new(p).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(p), "{p}: {e}");
        }
    }
}
