//! rlxc-top: the running containers of the lxcpath and what they use, round after round
//! (LXC's lxc-top). On a terminal a full-screen view redrawn in place (keys change the
//! order); with --batch, or when stdout is no terminal, plain lines: a header once, then
//! one line per container each round, raw numbers for scripts.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::termios;

use super::Common;
use crate::container::top::{
    check_delay, interrupted, sort_rows, terminal_size, Top, TopRow, TopSort,
};
use crate::error::{Error, Result};

fn written(e: std::io::Error) -> Error {
    Error::io("write to", "standard output", e)
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Plain lines for scripts (a header, then a line per container each round) instead
    /// of a screen redrawn in place.
    #[arg(short = 'b', long)]
    batch: bool,
    /// Seconds between rounds.
    #[arg(short = 'd', long, value_name = "SECS", default_value_t = 3.0)]
    delay: f64,
    /// Order by cpu, memory, swap, io, net, pids (largest first) or name; lxc-top's
    /// letters c, m, s, b, n work too.
    #[arg(short = 's', long, value_name = "KEY", default_value = "cpu", value_parser = parse_sort)]
    sort: TopSort,
    /// The other way round.
    #[arg(short = 'r', long)]
    reverse: bool,
    /// Stop after N rounds (default: until Ctrl-C, or q on the screen).
    #[arg(short = 'i', long, value_name = "N")]
    iterations: Option<u64>,
    #[command(flatten)]
    common: Common,
}

fn parse_sort(s: &str) -> std::result::Result<TopSort, String> {
    s.parse()
}

const COLUMNS: [&str; 9] = [
    "NAME", "CPU%", "MEMORY", "SWAP", "BLKIO_R", "BLKIO_W", "NET_RX", "NET_TX", "PIDS",
];

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let delay = check_delay(a.delay)?;
    let mut top = Top::new(&sys)?;
    let mut screen = if !a.batch && std::io::stdout().is_terminal() {
        Some(Screen::enter())
    } else {
        None
    };
    let (mut sort, mut reverse) = (a.sort, a.reverse);
    let mut out = std::io::stdout().lock();
    if screen.is_none() {
        writeln!(
            out,
            "{:<14} {}",
            "TIME",
            batch_line(&COLUMNS.map(String::from))
        )
        .map_err(written)?;
    }
    let mut round = 0u64;
    loop {
        let mut rows = top.sample()?;
        sort_rows(&mut rows, sort, reverse);
        round += 1;
        match screen.as_mut() {
            Some(s) => s
                .draw(&view(&rows, &sys.lxcpath, delay, sort, reverse))
                .map_err(written)?,
            None => {
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                for r in &rows {
                    writeln!(out, "{now:<14.3} {}", batch_line(&raw_cells(r))).map_err(written)?;
                }
                out.flush().map_err(written)?;
            }
        }
        if a.iterations.is_some_and(|n| round >= n) {
            return Ok(0);
        }
        // A key redraws at once; q, Ctrl-C or SIGTERM end it quietly, as top's do.
        let deadline = Instant::now() + delay;
        loop {
            match wait_key(screen.as_ref(), deadline) {
                Wait::Quit => return Ok(0),
                Wait::Timeout => break,
                Wait::Key(b'r') => reverse = !reverse,
                Wait::Key(k) => match (k as char).to_string().parse::<TopSort>() {
                    // The same key again turns the order round, as in lxc-top.
                    Ok(s) if s == sort => reverse = !reverse,
                    Ok(s) => (sort, reverse) = (s, false),
                    Err(_) => continue,
                },
            }
            break;
        }
    }
}

/// Cells separated by blanks, each at least as wide as its column usually is.
fn batch_line(cells: &[String; 9]) -> String {
    let mut line = format!("{:<20}", cells[0]);
    for c in &cells[1..] {
        line += &format!(" {c:>12}");
    }
    line
}

/// A row's cells, sizes through `size`, `-` for what is not counted.
fn cells(r: &TopRow, size: fn(u64) -> String) -> [String; 9] {
    let n = |v: Option<u64>, f: fn(u64) -> String| v.map_or_else(|| "-".to_string(), f);
    [
        r.name.clone(),
        r.cpu.map_or_else(|| "-".into(), |c| format!("{c:.1}")),
        n(r.memory, size),
        n(r.swap, size),
        n(r.io_read, size),
        n(r.io_write, size),
        n(r.net_rx, size),
        n(r.net_tx, size),
        n(r.tasks, |t| t.to_string()),
    ]
}

/// Raw numbers (bytes, percent), for scripts.
fn raw_cells(r: &TopRow) -> [String; 9] {
    cells(r, |v| v.to_string())
}

/// The screen's lines: a title, the column names, a row per container, the totals.
fn view(
    rows: &[TopRow],
    lxcpath: &std::path::Path,
    delay: Duration,
    sort: TopSort,
    reverse: bool,
) -> Vec<String> {
    let width = rows
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .clamp(8, 32);
    let line = |c: &[String; 9]| {
        let mut l = format!("{:<width$.width$}", c[0]);
        for (i, v) in c[1..].iter().enumerate() {
            l += &format!(" {v:>w$}", w = if i == 0 { 6 } else { 9 });
        }
        l
    };
    let sum = |f: fn(&TopRow) -> Option<u64>| rows.iter().filter_map(f).reduce(|a, b| a + b);
    let total = TopRow {
        name: "TOTAL".into(),
        cpu: rows.iter().filter_map(|r| r.cpu).reduce(|a, b| a + b),
        memory: sum(|r| r.memory),
        swap: sum(|r| r.swap),
        io_read: sum(|r| r.io_read),
        io_write: sum(|r| r.io_write),
        net_rx: sum(|r| r.net_rx),
        net_tx: sum(|r| r.net_tx),
        tasks: sum(|r| r.tasks),
    };
    let mut out = vec![
        format!(
            "rlxc-top: {} running in {}, every {} s, by {}{}   keys: c m s b n p order, r reverse, q quit",
            rows.len(),
            lxcpath.display(),
            delay.as_secs_f64(),
            sort.as_str(),
            if reverse { " (reversed)" } else { "" }
        ),
        format!("\x1b[7m{}\x1b[0m", line(&COLUMNS.map(String::from))),
    ];
    out.extend(rows.iter().map(|r| line(&cells(r, human))));
    out.push(format!("\x1b[1m{}\x1b[0m", line(&cells(&total, human))));
    out
}

/// Bytes in a column of 9: "512B", "12.4K", "3.0G".
fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

/// The full-screen view: the terminal's alternate screen, no cursor, keys read one by
/// one without echo; all of it undone when dropped.
struct Screen {
    saved: Option<termios::Termios>,
}

impl Screen {
    fn enter() -> Self {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(old) = &saved {
            let mut t = old.clone();
            // Ctrl-C still interrupts (ISIG stays): the loop sees it and ends.
            t.local_flags
                .remove(termios::LocalFlags::ICANON | termios::LocalFlags::ECHO);
            t.control_chars[termios::SpecialCharacterIndices::VMIN as usize] = 1;
            t.control_chars[termios::SpecialCharacterIndices::VTIME as usize] = 0;
            let _ = termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSANOW, &t);
        }
        let mut out = std::io::stdout();
        let _ = out.write_all(b"\x1b[?1049h\x1b[?25l");
        let _ = out.flush();
        Screen { saved }
    }

    /// Redraw in place: home, each line over the old one, the rest cleared; one write,
    /// so the terminal never shows a half-drawn or blank screen.
    fn draw(&mut self, lines: &[String]) -> std::io::Result<()> {
        let (rows, cols) = terminal_size(std::io::stdout().as_fd()).unwrap_or((24, 80));
        let mut frame = String::from("\x1b[H");
        for (i, l) in lines.iter().take(usize::from(rows.max(3))).enumerate() {
            if i > 0 {
                frame.push_str("\r\n");
            }
            frame.push_str(&clip(l, usize::from(cols)));
            frame.push_str("\x1b[K");
        }
        frame.push_str("\x1b[J");
        let mut out = std::io::stdout().lock();
        out.write_all(frame.as_bytes())?;
        out.flush()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut out = std::io::stdout();
        let _ = out.write_all(b"\x1b[?25h\x1b[?1049l");
        let _ = out.flush();
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), termios::SetArg::TCSANOW, t);
        }
    }
}

/// At most `cols` visible characters of `line` (its escape sequences do not count).
fn clip(line: &str, cols: usize) -> String {
    let mut out = String::new();
    let mut shown = 0;
    let mut in_escape = false;
    for c in line.chars() {
        if c == '\x1b' {
            in_escape = true;
        }
        if in_escape {
            out.push(c);
            in_escape = !c.is_ascii_alphabetic();
            continue;
        }
        if shown < cols {
            out.push(c);
            shown += 1;
        }
    }
    out
}

enum Wait {
    Timeout,
    Key(u8),
    Quit,
}

/// Until `deadline`: a key typed on the screen's terminal, or an interrupt.
fn wait_key(screen: Option<&Screen>, deadline: Instant) -> Wait {
    let keys = screen.is_some_and(|s| s.saved.is_some());
    loop {
        if interrupted() {
            return Wait::Quit;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Wait::Timeout;
        }
        // Short slices: a signal that arrives between the check and the wait is seen
        // within one.
        let slice = left.min(Duration::from_millis(100));
        if !keys {
            std::thread::sleep(slice);
            continue;
        }
        let stdin = std::io::stdin();
        let mut fds = [nix::poll::PollFd::new(
            stdin.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = u16::try_from(slice.as_millis()).unwrap_or(100);
        if let Ok(n) = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            if n > 0 {
                let mut b = [0u8; 1];
                return match stdin.lock().read(&mut b) {
                    Ok(1) if b[0] == b'q' => Wait::Quit,
                    Ok(1) => Wait::Key(b[0]),
                    // The terminal is gone.
                    _ => Wait::Quit,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_fit_their_column() {
        assert_eq!(human(512), "512B");
        assert_eq!(human(1536), "1.5K");
        assert_eq!(human(3 << 30), "3.0G");
        assert!(human(u64::MAX).len() <= 9);
    }

    #[test]
    fn batch_lines_hold_raw_numbers_and_dashes() {
        let r = TopRow {
            name: "web1".into(),
            cpu: Some(97.31),
            memory: Some(1 << 20),
            tasks: Some(3),
            ..TopRow::default()
        };
        let fields: Vec<String> = batch_line(&raw_cells(&r))
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(
            fields,
            ["web1", "97.3", "1048576", "-", "-", "-", "-", "-", "3"]
        );
    }

    #[test]
    fn clipping_keeps_escape_sequences_whole() {
        assert_eq!(clip("\x1b[7mabcdef\x1b[0m", 3), "\x1b[7mabc\x1b[0m");
        assert_eq!(clip("ab", 5), "ab");
    }
}
