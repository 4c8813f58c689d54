//! Architecture names. Image indexes use Debian's names; the kernel speaks uname's.

/// Map a uname(2) machine name (or an already-Debian name) to the index's name.
pub fn to_debian(machine: &str) -> String {
    match machine {
        "x86_64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "armv7l" | "armv7" | "armv8l" | "armhf" => "armhf",
        "armv6l" | "armv5tel" | "armel" => "armel",
        "i386" | "i486" | "i586" | "i686" => "i386",
        "ppc64le" | "ppc64el" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        other => other,
    }
    .to_string()
}

/// The host's architecture in the index's naming.
pub fn host() -> String {
    let machine = nix::sys::utsname::uname()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_else(|_| std::env::consts::ARCH.to_string());
    to_debian(&machine)
}

/// Can a container of `arch` run natively here (same arch or a 32-bit personality)?
pub fn is_compatible_with_host(arch: &str) -> bool {
    let host = host();
    arch == host
        || matches!(
            (host.as_str(), arch),
            ("amd64", "i386") | ("arm64", "armhf") | ("arm64", "armel")
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uname_names_map_to_debian() {
        for (u, d) in [
            ("x86_64", "amd64"),
            ("aarch64", "arm64"),
            ("armv7l", "armhf"),
            ("i686", "i386"),
            ("ppc64le", "ppc64el"),
            ("s390x", "s390x"),
            ("riscv64", "riscv64"),
            ("amd64", "amd64"),
        ] {
            assert_eq!(to_debian(u), d, "{u}");
        }
    }

    #[test]
    fn host_is_mapped() {
        let h = host();
        assert!(!h.is_empty());
        assert_ne!(h, "x86_64");
        assert!(is_compatible_with_host(&h));
    }
}
