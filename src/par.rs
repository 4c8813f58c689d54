//! Work over many containers at once on a few threads: asking a thousand monitors one
//! after another is a thousand round trips through a busy host's scheduler.

/// Monitors asked at once for a listing (rlxc-ls, rlxc-autostart -L): enough to hide
/// each round trip's wait, few enough for a 2-core host.
pub const MONITOR_QUERIES: usize = 16;

/// `f` of each item, in order, on up to `width` threads (each a run of the items).
pub fn map<T: Sync, R: Send>(items: &[T], width: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() < 2 || width < 2 {
        return items.iter().map(f).collect();
    }
    let run = items.len().div_ceil(width);
    let f = &f;
    std::thread::scope(|s| {
        let workers: Vec<_> = items
            .chunks(run)
            .map(|c| s.spawn(move || c.iter().map(f).collect::<Vec<R>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_the_order_on_any_width() {
        let items: Vec<u32> = (0..103).collect();
        for width in [0, 1, 2, 7, 16, 200] {
            assert_eq!(
                super::map(&items, width, |i| i * 2),
                (0..103).map(|i| i * 2).collect::<Vec<_>>()
            );
        }
    }
}
