//! The Debian package on this host, not installed: packaging/build-deb.sh packages this
//! build, lintian finds no error in it, its man pages format without warnings, and its
//! completions answer for rlxc and for the rlxc-NAME programs (bash as a shell loads
//! them: by the command's name).

mod common;

use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What bash completes for `line` (its last word), with the package's completion for
/// the line's program loaded as bash-completion loads it, by the program's name.
fn bash_completes(root: &Path, line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let file = root
        .join("usr/share/bash-completion/completions")
        .join(words[0]);
    let script = format!(
        "source {file}\n\
         COMP_WORDS=({line}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n\
         [[ '{line}' == *' ' ]] && {{ COMP_WORDS+=(''); COMP_CWORD=$((COMP_CWORD + 1)); }}\n\
         spec=$(complete -p {prog}); f=${{spec#*-F }}; f=${{f%% *}}\n\
         \"$f\" {prog} \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\" 2>/dev/null\n\
         echo \"${{COMPREPLY[*]}}\"",
        file = file.display(),
        prog = words[0],
    );
    let (ok, out, err) = run(Command::new("bash").arg("-c").arg(&script));
    assert!(ok, "bash completion for {line:?} failed: {out}{err}");
    out.trim().to_string()
}

#[test]
fn debian_package_is_lintian_clean_with_man_pages_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    let deb = common::deb::build(dir.path(), false);

    let lintian = Command::new("lintian")
        .args(["--fail-on", "none", "--display-info"])
        .arg(&deb)
        .output()
        .expect("run lintian (packaging/setup.sh --deps installs it)");
    let out = String::from_utf8_lossy(&lintian.stdout);
    let report = format!("{out}{}", String::from_utf8_lossy(&lintian.stderr));
    assert!(lintian.status.success(), "lintian failed:\n{report}");
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("E: ")).collect();
    assert!(errors.is_empty(), "lintian reports errors:\n{report}");
    println!("lintian:\n{report}");

    let root = dir.path().join("root");
    let (ok, out, err) = run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    assert!(ok, "dpkg-deb -x: {out}{err}");

    // One page per program, named for it; nested commands have theirs too.
    let man1 = root.join("usr/share/man/man1");
    for page in [
        "rlxc",
        "rlxc-start",
        "rlxc-ls",
        "rlxc-image",
        "rlxc-image-ls",
    ] {
        let path = man1.join(format!("{page}.1.gz"));
        let (ok, out, err) = run(Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(&path)
            .env("MANWIDTH", "100"));
        assert!(ok && err.is_empty(), "man -l {}: {err}", path.display());
        assert!(
            out.contains(&format!("{page} - ")),
            "{page}(1) names it:\n{out}"
        );
    }
    let (_, ls, _) = run(Command::new("man")
        .args(["-l"])
        .arg(man1.join("rlxc-ls.1.gz"))
        .env("MANWIDTH", "200"));
    assert!(ls.contains("-g, --groups <GROUPS>"), "rlxc-ls(1):\n{ls}");
    for page in ["rlxc.toml.5.gz", "rlxc-config.5.gz"] {
        assert!(
            root.join("usr/share/man/man5").join(page).is_file(),
            "{page}"
        );
    }

    // bash: rlxc-NAME as rlxc NAME, options and subcommands; the -n containers come
    // from rlxc-ls (none here: nothing to offer, and no file names instead).
    assert_eq!(bash_completes(&root, "rlxc-start --da"), "--daemon");
    assert_eq!(bash_completes(&root, "rlxc start --da"), "--daemon");
    assert_eq!(bash_completes(&root, "rlxc-ls --gr"), "--groups");
    assert_eq!(bash_completes(&root, "rlxc-image l"), "ls list");
    assert_eq!(bash_completes(&root, "rlxc-image ls --js"), "--json");
    assert_eq!(bash_completes(&root, "rlxc st"), "start stop");
    // zsh and fish autoload one file per program.
    for prog in ["rlxc", "rlxc-start", "rlxc-image"] {
        for (dir, file, want) in [
            (
                "zsh/vendor-completions",
                format!("_{prog}"),
                format!("#compdef {prog}\n"),
            ),
            (
                "fish/vendor_completions.d",
                format!("{prog}.fish"),
                format!("complete -c {prog} "),
            ),
        ] {
            let path = root.join("usr/share").join(dir).join(file);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(text.contains(&want), "{} lacks {want:?}", path.display());
        }
    }
}
