//! A managed bridge's per-container DHCP reservations and DNS names: one small file per
//! container in two directories, so a container whose address rlxc knows (`auto` or
//! fixed) resolves by name from its start, DHCP client or not. dnsmasq reads them on
//! SIGHUP, which the bridge's supervisor paces (`reloaded::Pacer`), from one file per
//! directory that the supervisor gathers just before it signals
//! (`supervisor::gather_all`); a start whose reservation is new waits for that signal
//! before its DHCP client can ask.
//! Who holds each MAC and address is kept beside them as claims (symlinks to the holder's
//! key), so a start finds a clash or a free address without reading every container's
//! reservation: reading them all at each start, under the bridge's lock, made the k-th
//! of a thousand starts wait for k file reads behind each of the others.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::dnsmasq::Files;
use crate::error::{IoContext, Result};

/// What `Files::dhcp_dir` adds to the bridge's name.
pub const DHCP_DIR: &str = "dhcp-hosts.d";

impl Files {
    /// Reservations, `MAC,NAME` or `MAC,IP,NAME`, one file per container.
    pub fn dhcp_dir(&self) -> PathBuf {
        self.path(DHCP_DIR)
    }
    /// DNS records, `IP NAME`, one file per container with an address rlxc knows.
    pub fn hosts_dir(&self) -> PathBuf {
        self.path("hosts.d")
    }
    /// Claims, `mac-MAC` and `ip-IP`: symlinks to the key whose reservation has them
    /// (outside what dnsmasq reads). A claim is trusted only while that reservation
    /// still holds it, so one left behind by a change or a crash is harmless.
    pub fn claims_dir(&self) -> PathBuf {
        self.path("claims.d")
    }
    /// What dnsmasq reads as `--dhcp-hostsfile`: `dhcp_dir`'s lines, gathered.
    pub fn dhcp_file(&self) -> PathBuf {
        self.path("dhcp-hosts")
    }
    /// What dnsmasq reads as `--addn-hosts`: `hosts_dir`'s lines, gathered.
    pub fn hosts_file(&self) -> PathBuf {
        self.path("hosts")
    }
}

/// Both directories, there before the supervisor first gathers them.
pub fn make_dirs(f: &Files) -> Result<()> {
    for d in [f.dhcp_dir(), f.hosts_dir()] {
        make_dir(&d)?;
    }
    Ok(())
}

/// Create `d` if missing, 0755 whatever the umask: dnsmasq lists and searches it as its
/// own unprivileged user. An existing one is left as it is (no call for each start).
pub fn make_dir(d: &Path) -> Result<()> {
    match std::fs::create_dir(d) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).ctx("create", d),
        Ok(()) => std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
            .ctx("set the mode of", d),
    }
}

/// Every reservation line, with the container it is for.
fn entries(f: &Files) -> Vec<(String, String)> {
    read_entries(&f.dhcp_dir()).unwrap_or_default()
}

/// A line is a MAC, an address and a name: far less than this. A file that is longer
/// was not written by rlxc.
const MAX_LINE: u64 = 4096;

/// The entries of a reservations or names directory, sorted by key, each with its line.
/// An entry rlxc did not write (too long, not one line of text, not a plain file: a FIFO
/// would block the open) costs only itself: it is skipped and said on stderr. A missing
/// directory has none.
pub fn read_entries(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            // rlxc's own temporary files (dot names) are not entries.
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).ctx("read", dir),
    };
    names.sort_unstable();
    let mut v = Vec::with_capacity(names.len());
    for n in names {
        match entry_line(&dir.join(&n)) {
            Ok(Some(line)) => v.push((n, line)),
            Ok(None) => {}
            Err(why) => eprintln!("{}: {why}; skipped", dir.join(&n).display()),
        }
    }
    Ok(v)
}

/// The one line of an entry file; None when it is empty or was released since the
/// listing.
fn entry_line(p: &Path) -> std::result::Result<Option<String>, String> {
    let mut bytes = Vec::new();
    let read = std::fs::File::open(p).and_then(|f| {
        std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_LINE + 1), &mut bytes)
    });
    match read {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    if bytes.len() as u64 > MAX_LINE {
        return Err(format!("longer than {MAX_LINE} bytes"));
    }
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let line = text.trim();
    if line.contains('\n') {
        return Err("more than one line".into());
    }
    Ok((!line.is_empty()).then(|| line.to_string()))
}

/// Reservations: `MAC,NAME` or `MAC,IP,NAME` lines.
#[cfg(test)]
pub fn reservations(f: &Files) -> Vec<String> {
    entries(f).into_iter().map(|(_, l)| l).collect()
}

/// What a reservation line claims: its MAC, and its address if it has one.
fn claims_of(line: &str) -> Vec<String> {
    let fields: Vec<&str> = line.split(',').collect();
    // A claim is a file name: a hand-written line with a '/' in it claims nothing.
    if fields[0].contains('/') {
        return Vec::new();
    }
    let mut v = vec![format!("mac-{}", fields[0])];
    // MAC,IP,NAME, or MAC,IP where the name is left out (`dhcp_line`).
    if let [_, ip, ..] = fields[..] {
        if let Ok(ip) = ip.parse::<Ipv4Addr>() {
            v.push(format!("ip-{ip}"));
        }
    }
    v
}

/// A container's reservation for dnsmasq's `--dhcp-hostsfile`: `MAC,IP,NAME`, or
/// `MAC,NAME` without an address. A name dnsmasq would read as a keyword or a lease time
/// (`ignore` would deny the container DHCP, `5m` or `300` would set its lease) is left
/// out: the names file still gives it in DNS.
fn dhcp_line(mac: &str, ip: Option<Ipv4Addr>, name: &str) -> String {
    let name = (!dnsmasq_reads_as_option(name)).then_some(name);
    match (ip, name) {
        (Some(ip), Some(n)) => format!("{mac},{ip},{n}"),
        (Some(ip), None) => format!("{mac},{ip}"),
        (None, Some(n)) => format!("{mac},{n}"),
        (None, None) => mac.to_string(),
    }
}

/// Whether dnsmasq's dhcp-host parser takes `field` for something other than a name:
/// `ignore`, `infinite`, or digits with at most one time unit after them.
fn dnsmasq_reads_as_option(field: &str) -> bool {
    if field.eq_ignore_ascii_case("ignore") || field.eq_ignore_ascii_case("infinite") {
        return true;
    }
    let digits = match field.as_bytes() {
        [rest @ .., unit] if !rest.is_empty() && b"wdhmsWDHMS".contains(unit) => rest,
        all => all,
    };
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// The claims directory; built from the reservations when missing (a bridge an older
/// rlxc made): a full read, once, into a directory renamed into place when complete.
fn claims(f: &Files) -> Result<PathBuf> {
    let dir = f.claims_dir();
    if dir.is_dir() {
        return Ok(dir);
    }
    let tmp = f.path("claims.d.new");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).ctx("create", &tmp)?;
    for (key, line) in entries(f) {
        for c in claims_of(&line) {
            link(&tmp, &c, &key)?;
        }
    }
    std::fs::rename(&tmp, &dir).ctx("rename into place", &dir)?;
    Ok(dir)
}

/// The key whose reservation holds `claim` now, if any.
fn holder(f: &Files, dir: &Path, claim: &str) -> Option<String> {
    let key = std::fs::read_link(dir.join(claim))
        .ok()?
        .into_os_string()
        .into_string()
        .ok()?;
    let line = std::fs::read_to_string(f.dhcp_dir().join(&key)).ok()?;
    claims_of(line.trim())
        .iter()
        .any(|c| c == claim)
        .then_some(key)
}

/// Point `claim` at `key` (replacing whatever it pointed at).
fn link(dir: &Path, claim: &str, key: &str) -> Result<()> {
    let p = dir.join(claim);
    if std::fs::read_link(&p).is_ok_and(|k| k.as_os_str() == key) {
        return Ok(());
    }
    let tmp = dir.join(format!(".{claim}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(key, &tmp).ctx("create", &tmp)?;
    std::fs::rename(&tmp, &p).ctx("rename into place", &p)
}

/// Addresses reservations hold, from the claims' names (no file read). With `verify`,
/// each claim is checked against its holder's reservation and a stale one removed: what
/// a start does before it says the subnet is full.
pub fn claimed_addresses(f: &Files, verify: bool) -> Result<HashSet<Ipv4Addr>> {
    let dir = claims(f)?;
    let rd = std::fs::read_dir(&dir).ctx("read", &dir)?;
    let mut v = HashSet::new();
    for e in rd.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let Some(ip) = name.strip_prefix("ip-").and_then(|i| i.parse().ok()) else {
            continue;
        };
        if verify && holder(f, &dir, &name).is_none() {
            remove(&dir.join(&name))?;
            continue;
        }
        v.insert(ip);
    }
    Ok(v)
}

/// Give `mac` the DNS name `name` (and the address `ip`, if any, also as a DNS record),
/// in files named `key` (the container's installation key and interface: two
/// installations' containers of one name never share them); replaces the reservations
/// of other containers for that MAC or address. True when the reservation is new or
/// changed: the caller then has dnsmasq read it, and waits for that, before the
/// container's DHCP client asks (`dnsmasq::reload_and_wait`, once it holds no lock);
/// only other changes are signalled from here.
pub fn reserve(f: &Files, key: &str, mac: &str, ip: Option<Ipv4Addr>, name: &str) -> Result<bool> {
    make_dirs(f)?;
    let claims_dir = claims(f)?;
    let mac = mac.to_ascii_lowercase();
    let line = dhcp_line(&mac, ip, name);
    let mut reload = false;
    let claims = claims_of(&line);
    for c in &claims {
        if let Some(other) = holder(f, &claims_dir, c).filter(|o| o != key) {
            remove(&f.dhcp_dir().join(&other))?;
            remove(&f.hosts_dir().join(&other))?;
            reload = true;
        }
    }
    // Claimed before the reservation is written: a crash between leaves a claim its
    // holder does not back (ignored), never a reservation nobody's claim finds.
    for c in &claims {
        link(&claims_dir, c, key)?;
    }
    let own = f.dhcp_dir().join(key);
    // Every start reserves again: when nothing changed, dnsmasq is left alone, unless
    // the last reload came before the file (a start that wrote it failed before it
    // signalled).
    let changed = std::fs::read_to_string(&own)
        .ok()
        .is_none_or(|l| l.trim() != line);
    if changed {
        write(&own, &line)?;
    }
    let changed = changed || newer_than_last_reload(f, &own);
    let record = f.hosts_dir().join(key);
    match ip {
        Some(ip) => {
            let text = format!("{ip} {name}");
            if std::fs::read_to_string(&record)
                .ok()
                .as_deref()
                .map(str::trim)
                != Some(&text)
            {
                write(&record, &text)?;
                reload = true;
            }
        }
        None => {
            if record.exists() {
                remove(&record)?;
                reload = true;
            }
        }
    }
    // The caller's reload_and_wait signals a changed reservation (with the rest).
    if reload && !changed {
        super::dnsmasq::reload(f);
    }
    Ok(changed)
}

/// Whether `own` was written at or after the supervisor last stamped a reload (so
/// dnsmasq may not have read it). Without a stamp there is no supervisor to wait for.
fn newer_than_last_reload(f: &Files, own: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(own), modified(&f.reloaded())) {
        (Some(o), Some(r)) => o >= r,
        _ => false,
    }
}

/// Remove the reservations and names of a container that is gone: the files `key` and
/// `key-N` (its other interfaces, see `reserve`), and the claims they held. Only the
/// claims their lines name are looked at (one file each, not the whole directory): any
/// other claim on `key` is one a change left behind, already untrusted.
pub fn release(f: &Files, key: &str) -> Result<()> {
    let mut reload = false;
    let claims_dir = f.claims_dir();
    for own in files_of(&f.dhcp_dir(), key)? {
        let p = f.dhcp_dir().join(&own);
        let line = std::fs::read_to_string(&p).unwrap_or_default();
        // The reservation goes first: a crash before its claims leaves claims nobody
        // backs (ignored), never a reservation without them.
        remove(&p)?;
        reload = true;
        for c in claims_of(line.trim()) {
            let claim = claims_dir.join(&c);
            // One pointing elsewhere is another container's.
            if std::fs::read_link(&claim).is_ok_and(|k| k.as_os_str() == own.as_str()) {
                remove(&claim)?;
            }
        }
    }
    for own in files_of(&f.hosts_dir(), key)? {
        remove(&f.hosts_dir().join(own))?;
        reload = true;
    }
    // A removed reservation stays in dnsmasq until it reloads (see the module's top).
    if reload {
        super::dnsmasq::reload(f);
    }
    Ok(())
}

/// The names in `dir` that are `key`'s: `key`, or `key-N` for its interface N. Keys
/// end in `.TAG` (hex), so no other container's key or interface takes this form.
fn files_of(dir: &Path, key: &str) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx("read", dir),
    };
    let is_own = |name: &str| {
        name.strip_prefix(key).is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix('-')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    Ok(rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_own(n))
        .collect())
}

/// Replace `p` (0644: dnsmasq reads it as its own unprivileged user), unsynced: these
/// files live in RUNPATH (a tmpfs), and every start writes its own again, so none has
/// to outlive a crash.
fn write(p: &Path, line: &str) -> Result<()> {
    crate::config::write_atomic_unsynced(p, format!("{line}\n").as_bytes(), 0o644)
}

fn remove(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).ctx("remove", p),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::net::dnsmasq::tests::files;

    #[test]
    fn names_dnsmasq_would_read_as_options_stay_out_of_the_reservation_line() {
        for opt in [
            "ignore", "infinite", "300", "5m", "12h", "2w", "7d", "30s", "1",
        ] {
            assert!(dnsmasq_reads_as_option(opt), "{opt}");
        }
        for name in ["web", "m", "h1", "5m5", "x300", "ignored", "web-5m", "s"] {
            assert!(!dnsmasq_reads_as_option(name), "{name}");
        }
        let ip = "10.0.3.9".parse().ok();
        assert_eq!(dhcp_line("m", ip, "web"), "m,10.0.3.9,web");
        assert_eq!(dhcp_line("m", ip, "5m"), "m,10.0.3.9");
        assert_eq!(dhcp_line("m", None, "ignore"), "m");
        // The address is still claimed, and the name still resolves.
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        reserve(&f, "300.k1", "00:16:3e:00:00:09", ip, "300").unwrap();
        let claimed = claimed_addresses(&f, true).unwrap();
        assert!(
            claimed.contains(&"10.0.3.9".parse().unwrap()),
            "{claimed:?}"
        );
        assert_eq!(reservations(&f), ["00:16:3e:00:00:09,10.0.3.9"]);
        let record = std::fs::read_to_string(f.hosts_dir().join("300.k1")).unwrap();
        assert_eq!(record.trim(), "10.0.3.9 300");
    }

    #[test]
    fn an_unchanged_reservation_written_after_the_last_reload_is_waited_for_again() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        let again = || reserve(&f, "web.k1", "00:16:3e:00:00:01", None, "web").unwrap();
        assert!(again(), "new");
        // No supervisor stamp: nothing to wait for.
        assert!(!again());
        // A reload stamped before the file was written (its start failed before it
        // signalled): dnsmasq may not have it.
        std::fs::write(f.reloaded(), "1\n").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(f.reloaded())
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(again(), "written after the last reload");
        // Stamped after it: read.
        std::fs::write(f.reloaded(), "2\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(f.reloaded(), "3\n").unwrap();
        assert!(!again());
    }

    #[test]
    fn reservations_replace_by_mac_name_and_address() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        let add = |mac: &str, ip: Option<&str>, name: &str| {
            let key = format!("{name}.k1");
            reserve(&f, &key, mac, ip.map(|i| i.parse().unwrap()), name).unwrap()
        };
        add("00:16:3E:00:00:01", None, "web1");
        add("00:16:3e:00:00:02", Some("10.0.3.9"), "web2");
        add("00:16:3e:00:00:01", Some("10.0.3.8"), "web1");
        add("00:16:3e:00:00:03", Some("10.0.3.9"), "web3");
        assert_eq!(
            reservations(&f),
            [
                "00:16:3e:00:00:01,10.0.3.8,web1",
                "00:16:3e:00:00:03,10.0.3.9,web3"
            ]
        );
        let record = |n: &str| std::fs::read_to_string(f.hosts_dir().join(format!("{n}.k1"))).ok();
        assert_eq!(record("web1").as_deref(), Some("10.0.3.8 web1\n"));
        assert_eq!(record("web2"), None, "web2's address went to web3");
        // The same reservation again leaves the files (and dnsmasq) alone.
        use std::os::unix::fs::MetadataExt;
        let ino = |p: PathBuf| std::fs::metadata(p).unwrap().ino();
        let before = (
            ino(f.dhcp_dir().join("web3.k1")),
            ino(f.hosts_dir().join("web3.k1")),
        );
        add("00:16:3e:00:00:03", Some("10.0.3.9"), "web3");
        assert_eq!(
            (
                ino(f.dhcp_dir().join("web3.k1")),
                ino(f.hosts_dir().join("web3.k1"))
            ),
            before
        );
    }

    #[test]
    fn release_takes_a_containers_files_and_claims_and_nobody_elses() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        let ip = |a: &str| Some(a.parse().unwrap());
        reserve(&f, "web.k1", "00:16:3e:00:00:01", ip("10.0.3.8"), "web").unwrap();
        reserve(&f, "web.k1-2", "00:16:3e:00:00:02", ip("10.0.3.9"), "web-2").unwrap();
        reserve(&f, "web.k1-x", "00:16:3e:00:00:03", None, "odd").unwrap();
        reserve(&f, "web.k10", "00:16:3e:00:00:04", ip("10.0.3.10"), "web0").unwrap();
        reserve(
            &f,
            "other.k1",
            "00:16:3e:00:00:05",
            ip("10.0.3.11"),
            "other",
        )
        .unwrap();
        // A claim web.k1's line names, pointing at another container: theirs.
        link(&f.claims_dir(), "ip-10.0.3.8", "other.k1").unwrap();
        release(&f, "web.k1").unwrap();
        let names = |dir: PathBuf| {
            let mut v: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(f.dhcp_dir()), ["other.k1", "web.k1-x", "web.k10"]);
        assert_eq!(names(f.hosts_dir()), ["other.k1", "web.k10"]);
        assert_eq!(
            names(f.claims_dir()),
            [
                "ip-10.0.3.10",
                "ip-10.0.3.11",
                "ip-10.0.3.8",
                "mac-00:16:3e:00:00:03",
                "mac-00:16:3e:00:00:04",
                "mac-00:16:3e:00:00:05"
            ]
        );
        assert_eq!(
            std::fs::read_link(f.claims_dir().join("ip-10.0.3.8")).unwrap(),
            Path::new("other.k1")
        );
        assert_eq!(
            claimed_addresses(&f, true).unwrap(),
            HashSet::from([ip("10.0.3.10").unwrap(), ip("10.0.3.11").unwrap()])
        );
        // Nothing left to release, and a bridge without the directories: no error.
        release(&f, "web.k1").unwrap();
        release(&files(&d.path().join("none")), "web.k1").unwrap();
    }

    #[test]
    fn reservations_of_an_older_rlxc_are_claimed_and_stale_claims_go() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        // Written before claims existed: found all the same.
        make_dirs(&f).unwrap();
        std::fs::write(
            f.dhcp_dir().join("old.k0"),
            "00:16:3e:00:00:07,10.0.3.7,old\n",
        )
        .unwrap();
        std::fs::write(f.hosts_dir().join("old.k0"), "10.0.3.7 old\n").unwrap();
        let held = |verify| claimed_addresses(&f, verify).unwrap();
        assert_eq!(held(false), HashSet::from(["10.0.3.7".parse().unwrap()]));
        reserve(&f, "new.k1", "00:16:3e:00:00:07", None, "new").unwrap();
        assert_eq!(reservations(&f), ["00:16:3e:00:00:07,new"]);
        assert!(
            !f.hosts_dir().join("old.k0").exists(),
            "old's MAC went to new"
        );
        // The claim on old's address outlived its reservation: not trusted, and gone
        // once checked.
        assert_eq!(held(false).len(), 1);
        assert!(held(true).is_empty());
        assert!(held(false).is_empty());
        // A container that moves to another address leaves a stale claim on the first,
        // which removes nobody's reservation when another container takes that address.
        let ip = |a: &str| Some(a.parse().unwrap());
        // New and changed reservations are reported (a start waits for dnsmasq to read
        // them); one made again unchanged is not.
        assert!(reserve(&f, "a.k1", "00:16:3e:00:00:08", ip("10.0.3.8"), "a").unwrap());
        assert!(!reserve(&f, "a.k1", "00:16:3e:00:00:08", ip("10.0.3.8"), "a").unwrap());
        assert!(reserve(&f, "a.k1", "00:16:3e:00:00:08", ip("10.0.3.9"), "a").unwrap());
        assert!(reserve(&f, "b.k1", "00:16:3e:00:00:09", ip("10.0.3.8"), "b").unwrap());
        assert_eq!(
            held(true),
            HashSet::from(["10.0.3.8".parse().unwrap(), "10.0.3.9".parse().unwrap()])
        );
        assert_eq!(
            reservations(&f),
            [
                "00:16:3e:00:00:08,10.0.3.9,a",
                "00:16:3e:00:00:09,10.0.3.8,b",
                "00:16:3e:00:00:07,new"
            ]
        );
    }
}
