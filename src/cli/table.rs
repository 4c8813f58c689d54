//! Column-aligned tables, as `rlxc-create --list` and `rlxc-ls -f` print them.

/// The header and the rows as lines: each column padded to its widest cell (in bytes:
/// the cells are names, states and addresses), columns joined by `gap`, no trailing blanks.
pub fn render<H, C, R>(header: &[H], rows: &[R], gap: &str) -> Vec<String>
where
    H: AsRef<str>,
    C: AsRef<str>,
    R: AsRef<[C]>,
{
    let header: Vec<&str> = header.iter().map(AsRef::as_ref).collect();
    let rows: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.as_ref().iter().map(AsRef::as_ref).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|c| c.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(c.len()),
                None => widths.push(c.len()),
            }
        }
    }
    std::iter::once(&header)
        .chain(&rows)
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join(gap).trim_end().to_string()
        })
        .collect()
}

/// `render` to stdout.
pub fn print<H, C, R>(header: &[H], rows: &[R], gap: &str)
where
    H: AsRef<str>,
    C: AsRef<str>,
    R: AsRef<[C]>,
{
    for line in render(header, rows, gap) {
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = [["debian", "bookworm", "amd64"], ["alpine", "3.20", "arm64"]];
        assert_eq!(
            render(&["DIST", "RELEASE", "ARCH"], &rows, "  "),
            [
                "DIST    RELEASE   ARCH",
                "debian  bookworm  amd64",
                "alpine  3.20      arm64",
            ]
        );
    }

    #[test]
    fn trailing_blanks_are_trimmed_and_the_gap_is_the_callers() {
        let rows = vec![vec!["web1".to_string(), "-".to_string()]];
        assert_eq!(
            render(&["NAME", "IPV4"], &rows, " "),
            ["NAME IPV4", "web1 -"]
        );
        let rows = vec![vec!["a-long-name".to_string(), String::new()]];
        assert_eq!(
            render(&["NAME", "IPV4"], &rows, " "),
            ["NAME        IPV4", "a-long-name"]
        );
        assert_eq!(render::<_, &str, [&str; 1]>(&["NAME"], &[], " "), ["NAME"]);
    }
}
