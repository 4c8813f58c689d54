//! System config (`/etc/rlxc/rlxc.toml`) and per-container config (`NAME/config.toml`).
//! Both are TOML with unknown keys refused; errors name the file, the line and the key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod bridge;
mod device;
mod download;
pub mod edit;
mod file;
mod groups;
mod idmap;
mod limits;
mod publish;
mod rootfs;
mod signal;
mod size;
mod time;
mod types;

pub use bridge::{BridgeIpv4, BridgeIpv6, DhcpRange};
pub use device::{Device, DeviceSource};
use download::DownloadSection;
pub use download::DEFAULT_MAX_IMAGE_SIZE;
use file::read_toml;
pub use file::{
    parse_toml, read_text, write_atomic, write_atomic_unsynced, write_new, MAX_CONFIG_SIZE,
};
pub use groups::{parse_group_list, parse_required_groups};
pub use size::format_size;
pub use time::format_utc;
pub use types::{
    AppUser, ByteSize, CgroupLayout, HwaddrTemplate, Ipv4Assigned, Ipv4Gateway, Ipv4Mode,
    MacvlanMode, NetKind, Signal,
};

pub mod validate;
pub use idmap::{IdMap, Range as IdRange, SubidFiles};
pub use limits::{CpuSet, Limits, Weight};
pub use publish::{PortRange, Proto, Publish};
pub use rootfs::{Backend, Rootfs};

pub const DEFAULT_SYSTEM_CONFIG: &str = "/etc/rlxc/rlxc.toml";
pub const DEFAULT_SERVER: &str = "images.linuxcontainers.org";
/// The lxcpath of an installation whose config does not name one: the default one.
pub const DEFAULT_LXCPATH: &str = "/var/lib/rlxc";
/// The defaults for new containers shipped in `config/`, used when no file is installed.
pub const BUILTIN_DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemConfigFile {
    lxcpath: Option<PathBuf>,
    cachepath: Option<PathBuf>,
    runpath: Option<PathBuf>,
    /// Defaults for new containers; relative paths are taken from the config file's directory.
    defaults: Option<PathBuf>,
    /// The sysadmin's own template directories, searched before the shipped ones;
    /// relative paths are taken from the config file's directory.
    #[serde(default)]
    templates_path: Vec<PathBuf>,
    #[serde(default)]
    download: DownloadSection,
    #[serde(default)]
    network: NetworkSettings,
    #[serde(default)]
    idmap: SubidFiles,
}

/// The effective system configuration: file values over built-in defaults.
#[derive(Debug, Clone)]
pub struct SystemConfig {
    /// The file it came from, or None for built-in defaults.
    pub file: Option<PathBuf>,
    pub lxcpath: PathBuf,
    pub cachepath: PathBuf,
    pub runpath: PathBuf,
    pub defaults: PathBuf,
    /// `templates_path`: directories searched for `rlxc-NAME` templates first.
    pub templates_path: Vec<PathBuf>,
    pub download_server: String,
    /// `[download] max_image_size` in bytes.
    pub max_image_size: u64,
    pub network: NetworkSettings,
    /// `[idmap]`: where root's subordinate ids are listed.
    pub subid: SubidFiles,
}

/// The managed bridge: `[network]` in rlxc.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSettings {
    /// Bridge name. If it exists and rlxc did not create it, rlxc only attaches veths.
    pub bridge: String,
    /// The bridge's address and the subnet, e.g. "10.0.3.1/24".
    pub ipv4: BridgeIpv4,
    /// First and last DHCP address; default: the whole subnet after the bridge address.
    pub dhcp_range: Option<DhcpRange>,
    /// Optional IPv6 address/prefix for the bridge (router advertisements, SLAAC).
    pub ipv6: Option<BridgeIpv6>,
    /// DNS domain of the containers.
    pub domain: String,
    /// Masquerade the subnet's traffic leaving the host.
    pub nat: bool,
    /// Forward names dnsmasq does not know to the host's resolvers.
    pub upstream_dns: bool,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings {
            bridge: "virbr0".into(),
            ipv4: bridge::DEFAULT_BRIDGE_IPV4,
            dhcp_range: None,
            ipv6: None,
            domain: "lxc".into(),
            nat: true,
            upstream_dns: true,
        }
    }
}

impl SystemConfig {
    /// `$RLXC_CONFIG` if set (it must exist), else `/etc/rlxc/rlxc.toml` if present,
    /// else built-in defaults.
    pub fn load() -> Result<Self> {
        match std::env::var_os("RLXC_CONFIG") {
            Some(f) if !f.is_empty() => Self::from_file(Path::new(&f)),
            _ => {
                let f = Path::new(DEFAULT_SYSTEM_CONFIG);
                if f.exists() {
                    Self::from_file(f)
                } else {
                    Ok(Self::builtin(
                        Path::new("/etc/rlxc"),
                        SystemConfigFile::default(),
                    ))
                }
            }
        }
    }

    /// The file `load` reads: `$RLXC_CONFIG`, else `/etc/rlxc/rlxc.toml` (which may not
    /// exist yet).
    pub fn path() -> PathBuf {
        match std::env::var_os("RLXC_CONFIG") {
            Some(f) if !f.is_empty() => PathBuf::from(f),
            _ => PathBuf::from(DEFAULT_SYSTEM_CONFIG),
        }
    }

    pub fn from_file(file: &Path) -> Result<Self> {
        Self::from_text(file, &read_text(file)?)
    }

    /// The config `text` (of `file`) holds, checked as a file's is.
    pub fn from_text(file: &Path, text: &str) -> Result<Self> {
        let parsed: SystemConfigFile = parse_toml(file, text)?;
        let dir = file.parent().unwrap_or(Path::new("/"));
        let max_image_size = parsed.download.max_image_size(file)?;
        let mut cfg = Self::builtin(dir, parsed);
        cfg.file = Some(file.to_path_buf());
        cfg.max_image_size = max_image_size;
        cfg.validate()?;
        Ok(cfg)
    }

    fn builtin(dir: &Path, f: SystemConfigFile) -> Self {
        SystemConfig {
            file: None,
            lxcpath: f.lxcpath.unwrap_or_else(|| DEFAULT_LXCPATH.into()),
            cachepath: f.cachepath.unwrap_or_else(|| "/var/cache/rlxc".into()),
            runpath: f.runpath.unwrap_or_else(|| "/run/rlxc".into()),
            defaults: dir.join(f.defaults.unwrap_or_else(|| "default.toml".into())),
            templates_path: f.templates_path.iter().map(|p| dir.join(p)).collect(),
            download_server: f.download.server.unwrap_or_else(|| DEFAULT_SERVER.into()),
            max_image_size: DEFAULT_MAX_IMAGE_SIZE,
            network: f.network,
            subid: f.idmap,
        }
    }

    fn validate(&self) -> Result<()> {
        let file = self.file.clone().unwrap_or_default();
        for (key, p) in [
            ("lxcpath", &self.lxcpath),
            ("cachepath", &self.cachepath),
            ("runpath", &self.runpath),
        ] {
            if let Err(why) = validate::install_dir(p) {
                return Err(Error::Config {
                    file,
                    msg: format!("key `{key}`: {why}"),
                });
            }
        }
        if let Err(why) = self.subid.check() {
            return Err(Error::Config { file, msg: why });
        }
        let br = &self.network.bridge;
        if br.is_empty() || br.len() > 15 || br.contains(['/', ' ', ':']) {
            return Err(Error::Config {
                file,
                msg: format!("key `network.bridge` = {br:?}: an interface name of 1-15 characters without '/', ':' or spaces"),
            });
        }
        if self.network.domain.is_empty()
            || !self
                .network
                .domain
                .split('.')
                .all(crate::name::is_dns_label)
        {
            return Err(Error::Config {
                file,
                msg: format!(
                    "key `network.domain` = {:?}: a DNS domain like \"lxc\"",
                    self.network.domain
                ),
            });
        }
        if self.download_server.trim().is_empty() {
            return Err(Error::Config {
                file,
                msg: "key `download.server` is empty".into(),
            });
        }
        Ok(())
    }

    /// The defaults for new containers: the installed file, else the built-in copy.
    pub fn container_defaults(&self) -> Result<ContainerConfig> {
        if self.defaults.exists() {
            // Say where the path came from: the file it names may be nothing like a config.
            ContainerConfig::load(&self.defaults).map_err(|e| match (e, &self.file) {
                (Error::Config { file, msg }, Some(sys)) => Error::Config {
                    file,
                    msg: format!("{msg} (named by `defaults` in {})", sys.display()),
                },
                (e, _) => e,
            })
        } else {
            parse_toml(Path::new("<built-in default.toml>"), BUILTIN_DEFAULTS)
        }
    }
}

/// Per-container configuration, `LXCPATH/NAME/config.toml`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Debian architecture name (amd64, arm64, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Destroyed when it stops (`rlxc-copy -e`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ephemeral: bool,
    #[serde(default, skip_serializing_if = "Init::is_default")]
    pub init: Init,
    #[serde(default, skip_serializing_if = "Signals::is_default")]
    pub signals: Signals,
    /// The cgroup tree init sees (LXC has no such key: it picks from the host alone).
    #[serde(default, skip_serializing_if = "is_default_layout")]
    pub cgroup_layout: CgroupLayout,
    /// `/dev/tty1..N`, each a pty the monitor holds (`rlxc-console -t N`); LXC's
    /// `lxc.tty.max`. Unset: `DEFAULT_TTY_MAX` (see `ttys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty_max: Option<u32>,
    #[serde(default, skip_serializing_if = "Limits::is_default")]
    pub limits: Limits,
    #[serde(default, skip_serializing_if = "Autostart::is_default")]
    pub autostart: Autostart,
    /// A user namespace of its own (unprivileged); absent: privileged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idmap: Option<IdMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSource>,
    #[serde(default, rename = "network", skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<Network>,
    #[serde(default, rename = "mount", skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountEntry>,
    /// Host ports that reach the container (`[[publish]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<Publish>,
    /// Host device nodes and interfaces given to it at every start (`[[device]]`).
    #[serde(default, rename = "device", skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// Where the root file system is; written at create time.
    #[serde(default)]
    pub rootfs: Rootfs,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Init {
    /// Command run as the container's PID 1; default `/sbin/init`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    /// Extra `KEY=VALUE` for init's environment (`container=lxc` is always set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// An application container (an OCI image without an init): `cmd` runs as the
    /// payload under rlxc's own small init, which reaps and forwards signals; its exit
    /// status is kept for rlxc-info.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub app: bool,
    /// The application's working directory inside the container (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The application's `UID:GID` inside the container (default `0:0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<AppUser>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signals {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt: Option<Signal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot: Option<Signal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Signal>,
}

/// `[autostart]`: LXC's `lxc.start.auto`, `lxc.start.delay`, `lxc.start.order` and
/// `lxc.group` (see rlxc-autostart).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Autostart {
    /// Started by rlxc-autostart (at boot by rlxc.service).
    #[serde(default)]
    pub enabled: bool,
    /// Seconds to wait after starting it before the next order starts.
    #[serde(default)]
    pub delay: u32,
    /// Lower starts earlier (and stops later); equal orders start together.
    #[serde(default)]
    pub order: i32,
    /// Groups it belongs to (`rlxc-autostart -g`); "onboot" is started first at boot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// Where the rootfs came from; written by the download template.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSource {
    pub server: String,
    pub dist: String,
    pub release: String,
    pub arch: String,
    pub variant: String,
    pub build: String,
    /// Ports an OCI image says its application listens on (`80/tcp`), for `[[publish]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed_ports: Vec<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(rename = "type")]
    pub kind: NetKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Interface name inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// MAC address; `x` digits are filled with random ones at create time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hwaddr: Option<HwaddrTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Mode>,
    /// The address `ipv4 = "auto"` picked on the managed bridge, recorded so it stays
    /// the container's and no other container gets it. Remove it to pick again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_assigned: Option<Ipv4Assigned>,
    /// Default route for a fixed address: an address, or "auto" (the managed bridge's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_gateway: Option<Ipv4Gateway>,
    /// macvlan mode; bridge when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<MacvlanMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

impl Network {
    /// The address it has before it starts, and its prefix: a fixed one, or the one
    /// `auto` recorded; None for DHCP or none yet.
    pub fn known_ipv4_net(&self) -> Option<ipnetwork::Ipv4Network> {
        match self.ipv4? {
            Ipv4Mode::Auto => Some(self.ipv4_assigned?.0),
            Ipv4Mode::Dhcp => None,
            Ipv4Mode::Fixed(net) => Some(net),
        }
    }

    /// Its known address alone (see `known_ipv4_net`).
    pub fn known_ipv4(&self) -> Option<std::net::Ipv4Addr> {
        self.known_ipv4_net().map(|n| n.ip())
    }

    /// The bridge (veth) or parent (macvlan): `link`, else the managed bridge.
    pub fn link_or<'a>(&'a self, managed: &'a NetworkSettings) -> &'a str {
        self.link.as_deref().unwrap_or(&managed.bridge)
    }
}

/// A bind or file-system mount, as LXC's `lxc.mount.entry`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountEntry {
    pub source: String,
    /// Path inside the container, relative to its root.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fstype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
}

/// As LXC's `lxc.tty.max` in its Debian and Ubuntu templates.
pub const DEFAULT_TTY_MAX: u32 = 4;
/// The most `tty_max` may be: each is a pty and a descriptor passed at every start.
pub const TTY_MAX_LIMIT: u32 = 12;

fn is_default_layout(l: &CgroupLayout) -> bool {
    *l == CgroupLayout::Auto
}

impl Init {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}
impl Signals {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}
impl Autostart {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// Group names as rlxc-autostart's `-g` can name them: no commas or blanks.
    pub fn check(&self) -> std::result::Result<(), String> {
        for g in &self.groups {
            if g.is_empty()
                || g.len() > 64
                || g.chars()
                    .any(|c| c == ',' || c.is_whitespace() || c.is_control())
            {
                return Err(format!(
                    "autostart.groups: {g:?} is not a group name (1-64 characters, no commas or blanks)"
                ));
            }
        }
        Ok(())
    }
}

impl ContainerConfig {
    /// How many `/dev/ttyN` the container gets.
    pub fn ttys(&self) -> u32 {
        self.tty_max.unwrap_or(DEFAULT_TTY_MAX)
    }

    /// The host name a container of this name with this config has: its `hostname`,
    /// else one made of its name.
    pub fn host_name(&self, name: &str) -> String {
        self.hostname
            .clone()
            .unwrap_or_else(|| crate::name::hostname_for(name))
    }

    pub fn load(file: &Path) -> Result<Self> {
        let cfg: Self = read_toml(file)?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Values a start would choke on, reported with the key that holds them.
    pub fn validate(&self, file: &Path) -> Result<()> {
        let err = |msg: String| {
            Err(Error::Config {
                file: file.to_path_buf(),
                msg,
            })
        };
        // The values check themselves at load (types.rs); what is left spans keys.
        if let Some(Err(why)) = self.idmap.as_ref().map(|m| m.check(false)) {
            return err(why);
        }
        for (i, n) in self.networks.iter().enumerate() {
            if let Some(m) = n.mode {
                if n.kind != NetKind::Macvlan {
                    return err(format!(
                        "network[{i}].mode = {:?}: only for type = \"macvlan\"",
                        m.as_str()
                    ));
                }
            }
            if n.kind == NetKind::Macvlan && n.link.is_none() {
                return err(format!(
                    "network[{i}]: a macvlan needs link, the host interface it shares"
                ));
            }
        }
        if let Err(why) = self.limits.check() {
            return err(why);
        }
        if let Some(n) = self.tty_max.filter(|n| *n > TTY_MAX_LIMIT) {
            return err(format!(
                "tty_max = {n}: at most {TTY_MAX_LIMIT} (0 for no /dev/ttyN)"
            ));
        }
        for (i, m) in self.mounts.iter().enumerate() {
            if m.target.split('/').any(|c| c == "..") {
                return err(format!(
                    "mount[{i}].target = {:?}: must not contain '..'",
                    m.target
                ));
            }
        }
        validate::container_values(self).or_else(err)
    }

    /// Write atomically (temp file + rename) with a header comment.
    pub fn save(&self, file: &Path) -> Result<()> {
        write_atomic(file, self.to_text(file)?.as_bytes(), 0o644)
    }

    /// `save` of the config of a container being made, in its directory nothing else
    /// sees yet (`write_new`).
    pub fn save_new(&self, file: &Path) -> Result<()> {
        write_new(file, self.to_text(file)?.as_bytes(), 0o644)
    }

    /// The text `save` writes (`file` names it in an error).
    pub fn to_text(&self, file: &Path) -> Result<String> {
        let body = toml::to_string_pretty(self).map_err(|e| {
            Error::Other(format!(
                "cannot serialise config for {}: {e}",
                file.display()
            ))
        })?;
        Ok(format!(
            "# rlxc container configuration (see `man rlxc.container.conf`-style notes in README.md)\n{body}"
        ))
    }

    /// Fill `x` digits of MAC address templates (LXC's `00:16:3e:xx:xx:xx`) with random hex.
    pub fn fill_hwaddrs(&mut self) {
        for n in &mut self.networks {
            if let Some(mac) = &n.hwaddr {
                n.hwaddr = Some(mac.fill(&mut random_bytes(6).into_iter()));
            }
        }
    }
}

/// Random bytes from the kernel; a MAC collision is the only thing at stake.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    buf
}

#[cfg(test)]
mod tests;
