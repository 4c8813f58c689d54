//! Host id ranges as half-open spans, in u64 so no sum overflows, and the one search
//! every allocation makes: the lowest run of free ids inside some ranges.

use crate::config::IdRange;

/// One past the highest id a map may reach: (uid_t)-1 means "no id" to the kernel.
pub const ID_END: u64 = u32::MAX as u64;

/// Ids `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

impl Span {
    /// `count` ids from `start`, cut at `ID_END`.
    pub fn new(start: u64, count: u64) -> Span {
        let start = start.min(ID_END);
        Span {
            start,
            end: start.saturating_add(count).min(ID_END),
        }
    }

    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn overlaps(&self, o: &Span) -> bool {
        self.start < o.end && o.start < self.end
    }
}

impl From<IdRange> for Span {
    fn from(r: IdRange) -> Span {
        Span::new(r.host.into(), r.count.into())
    }
}

/// "1000000-1065535": the first and last id, as /etc/subuid users read them.
impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start, self.end.saturating_sub(1))
    }
}

/// The spans joined where they overlap or touch, sorted; empty ones dropped.
pub fn merged(spans: &[Span]) -> Vec<Span> {
    let mut v: Vec<Span> = spans.iter().copied().filter(|s| s.len() > 0).collect();
    v.sort();
    let mut out: Vec<Span> = Vec::with_capacity(v.len());
    for s in v {
        match out.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => out.push(s),
        }
    }
    out
}

/// The lowest start of `count` ids that lie inside `within` (taken together) and
/// overlap none of `taken`.
pub fn lowest_free(within: &[Span], taken: &[Span], count: u64) -> Option<u64> {
    if count == 0 {
        return None;
    }
    let taken = merged(taken);
    for room in merged(within) {
        let mut at = room.start;
        for t in taken.iter().filter(|t| t.end > room.start) {
            if t.start >= at.saturating_add(count) || t.start >= room.end {
                break;
            }
            at = at.max(t.end);
        }
        if at.saturating_add(count) <= room.end {
            return Some(at);
        }
    }
    None
}

/// How many runs of `count` ids fit, side by side, in the parts of `within` that
/// overlap none of `taken`.
pub fn slices_free(within: &[Span], taken: &[Span], count: u64) -> u64 {
    if count == 0 {
        return 0;
    }
    let taken = merged(taken);
    let mut n = 0;
    for room in merged(within) {
        let mut at = room.start;
        for t in taken
            .iter()
            .filter(|t| t.end > room.start && t.start < room.end)
        {
            n += t.start.saturating_sub(at) / count;
            at = at.max(t.end);
        }
        n += room.end.saturating_sub(at) / count;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(start: u64, count: u64) -> Span {
        Span::new(start, count)
    }

    #[test]
    fn the_lowest_free_slice_skips_what_is_taken() {
        let root = [s(1_000_000, 1_000_000)];
        assert_eq!(lowest_free(&root, &[], 65536), Some(1_000_000));
        let one = [s(1_000_000, 65536)];
        assert_eq!(lowest_free(&root, &one, 65536), Some(1_065_536));
        // A hole too small for a slice is skipped; one just large enough is used.
        let holes = [s(1_000_000, 65536), s(1_100_000, 65536), s(1_231_072, 10)];
        assert_eq!(lowest_free(&root, &holes, 65536), Some(1_165_536));
        assert_eq!(lowest_free(&root, &holes, 34_464), Some(1_065_536));
        // Taken ids outside the range, or overlapping its start, count where they lie.
        let around = [s(0, 1_000_010), s(5_000_000, 10)];
        assert_eq!(lowest_free(&root, &around, 100), Some(1_000_010));
        // Two touching ranges of root make one room: a slice may span both.
        let split = [s(1_000_000, 40_000), s(1_040_000, 40_000)];
        assert_eq!(lowest_free(&split, &[], 65536), Some(1_000_000));
        // Exhausted, and nothing asked.
        let full = [s(1_000_000, 1_000_000)];
        assert_eq!(lowest_free(&root, &full, 1), None);
        assert_eq!(lowest_free(&root, &[], 0), None);
        assert_eq!(lowest_free(&[], &[], 1), None);
    }

    #[test]
    fn a_later_range_is_used_when_the_first_is_full() {
        let root = [s(3_000_000, 65536), s(1_000_000, 65536)];
        let taken = [s(1_000_000, 1)];
        assert_eq!(lowest_free(&root, &taken, 65536), Some(3_000_000));
        assert_eq!(slices_free(&root, &taken, 65536), 1);
        assert_eq!(slices_free(&root, &[], 65536), 2);
        assert_eq!(slices_free(&root, &[], 1000), 130);
        let big = [s(1_000_000, 1_000_000_000)];
        let used = [s(1_000_000, 65536), s(1_200_000, 65536)];
        assert_eq!(slices_free(&big, &[], 65536), 15258);
        assert_eq!(slices_free(&big, &used, 65536), 15256);
        assert_eq!(slices_free(&big, &used, 0), 0);
    }

    #[test]
    fn spans_stop_below_the_invalid_id() {
        let top = s(u64::from(u32::MAX) - 5, u64::MAX);
        assert_eq!(top.end, ID_END);
        assert_eq!(top.len(), 5);
        assert_eq!(lowest_free(&[top], &[], 6), None);
        assert_eq!(lowest_free(&[top], &[], 5), Some(top.start));
        assert_eq!(s(100, 65536).to_string(), "100-65635");
        assert!(s(0, 10).overlaps(&s(9, 1)) && !s(0, 10).overlaps(&s(10, 1)));
        assert_eq!(merged(&[s(5, 5), s(0, 5), s(20, 0)]), [s(0, 10)]);
    }
}
