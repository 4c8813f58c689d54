//! Man pages (clap_mangen) and shell completions (clap_complete) made from the clap
//! definitions by the hidden `rlxc __gen-man DIR` and `rlxc __gen-completions DIR`
//! (packaging/build-deb.sh), so they never drift from the binary. Every command is also
//! its own program, `rlxc-NAME`, so each gets a page and completions under that name.

use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory, ValueHint};
use clap_complete::Shell;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

use crate::error::{IoContext, Result};

#[derive(clap::Args, Debug)]
pub struct GenArgs {
    /// Directory to write into (created).
    dir: PathBuf,
}

/// Commands whose `-n` names a container that does not exist yet (or an LXC one):
/// completing rlxc's container names there would only mislead.
const NEW_NAME: &[&str] = &["create", "import", "migrate"];

/// `rlxc` with only the commands a user runs (the hidden ones and `help` left out: the
/// completion generators would offer them), unbuilt so each can be renamed.
fn public() -> Command {
    let full = super::Cli::command();
    let subs: Vec<Command> = full
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect();
    let mut top = Command::new("rlxc")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_subcommand(true)
        .subcommands(subs);
    if let Some(about) = full.get_about() {
        // rlxc(1)'s DESCRIPTION; NAME keeps the short about.
        let long = format!(
            "{about}\n\nrlxc CMD ARGS and rlxc-CMD ARGS are the same: every command is also \
             installed as its own program, rlxc-CMD, with its own page."
        );
        top = top.about(about.clone()).long_about(long);
    }
    top
}

/// A command of rlxc as the program `rlxc-NAME`.
fn program(sub: &Command) -> Command {
    let prog = format!("rlxc-{}", sub.get_name());
    let mut c = sub
        .clone()
        .name(prog.clone())
        .bin_name(prog.clone())
        .display_name(prog)
        .disable_help_subcommand(true);
    c.build();
    c
}

fn write(dir: &Path, name: &str, text: &[u8]) -> Result<()> {
    let p = dir.join(name);
    std::fs::write(&p, text).ctx("write", &p)
}

/// A page as clap_mangen renders it, with a SEE ALSO.
fn page(man: &Man, see: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = man.render(&mut out);
    let mut r = Roff::new();
    r.control("SH", ["SEE ALSO"]);
    for (i, s) in see.iter().enumerate() {
        let (name, section) = s.split_once('(').unwrap_or((s, ")"));
        let sep = if i + 1 < see.len() { "," } else { "" };
        r.text([bold(name), roman(format!("({section}{sep}"))]);
    }
    // to_roff: without the preamble render() already wrote.
    out.extend(r.to_roff().as_bytes());
    out
}

/// rlxc(1), rlxc-NAME(1) for every command and rlxc-NAME-SUB(1) for the commands
/// that have their own (`rlxc-image ls`): the pages the SUBCOMMANDS lists refer to.
pub fn man(a: GenArgs) -> Result<i32> {
    std::fs::create_dir_all(&a.dir).ctx("create", &a.dir)?;
    let source = format!("rlxc {}", env!("CARGO_PKG_VERSION"));
    let top = public();
    let see = ["rlxc(1)", "rlxc.toml(5)", "rlxc-config(5)"];
    let man = Man::new(top.clone()).source(source.clone());
    write(&a.dir, "rlxc.1", &page(&man, &see[1..]))?;
    for cmd in top.get_subcommands().map(program) {
        let prog = cmd.get_name().to_string();
        let parent = format!("{prog}(1)");
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let title = format!("{prog}-{}", sub.get_name());
            let usage = format!("{prog} {}", sub.get_name());
            let sub = sub.clone().bin_name(usage).display_name(title.clone());
            let man = Man::new(sub).source(source.clone());
            write(
                &a.dir,
                &format!("{title}.1"),
                &page(&man, &[&parent, see[0]]),
            )?;
        }
        let man = Man::new(cmd).source(source.clone());
        write(&a.dir, &format!("{prog}.1"), &page(&man, &see))?;
    }
    Ok(0)
}

/// The value name the completion snippets below recognise as an existing container.
const CONTAINER: &str = "CONTAINER";

/// A command's `-n` as the completion generators should see it: never file names, and
/// CONTAINER where it names an existing container. `cmd` is built (its arguments are
/// deferred until then); `name` is its name in rlxc (`create`), whatever it is called.
fn for_completion(cmd: Command, name: &str) -> Command {
    let existing = !NEW_NAME.contains(&name);
    let id = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some("name"))
        .map(|a| a.get_id().clone());
    let Some(id) = id else {
        return cmd;
    };
    let cmd = cmd.mut_arg(id, |a| {
        let a = a.value_hint(ValueHint::Other);
        if existing {
            a.value_name(CONTAINER)
        } else {
            a
        }
    });
    // mut_arg moved -n last, behind the --help the build added: --help goes last again
    // (the order the options are offered in).
    if cmd.get_arguments().any(|a| a.get_id() == "help") {
        cmd.mut_arg("help", |a| a)
    } else {
        cmd
    }
}

fn generate(shell: Shell, mut cmd: Command, bin: &str) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, bin, &mut out);
    out
}

/// bash: one file for rlxc and every rlxc-NAME (build-deb.sh links each name to it, as
/// bash-completion loads by command name); zsh and fish: one file per program, as
/// they autoload by name.
pub fn completions(a: GenArgs) -> Result<i32> {
    std::fs::create_dir_all(&a.dir).ctx("create", &a.dir)?;
    let unbuilt = public();
    // Built before `for_completion` looks at the arguments; as the generators build it.
    let mut top = unbuilt.clone();
    top.set_bin_name("rlxc");
    top.build();
    let all: Vec<String> = top
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for n in &all {
        top = top.mut_subcommand(n, |c| for_completion(c, n));
    }
    let subs: Vec<Command> = top.get_subcommands().cloned().collect();
    let named: Vec<&str> = subs
        .iter()
        .filter(|c| {
            c.get_arguments()
                .any(|a| a.get_value_names() == Some(&[CONTAINER.into()]))
        })
        .map(|c| c.get_name())
        .collect();

    let zdir = a.dir.join("zsh");
    let fdir = a.dir.join("fish");
    for d in [&zdir, &fdir] {
        std::fs::create_dir_all(d).ctx("create", d)?;
    }
    let mut bash = generate(Shell::Bash, top.clone(), "rlxc");
    let names: Vec<&str> = subs.iter().map(|c| c.get_name()).collect();
    bash.extend(bash_programs(&names, &named).as_bytes());
    write(&a.dir, "rlxc", &bash)?;
    let zsh = generate(Shell::Zsh, top.clone(), "rlxc");
    write(&zdir, "_rlxc", &zsh_names(zsh))?;
    let mut fish = generate(Shell::Fish, top.clone(), "rlxc");
    fish.extend(fish_names("rlxc", &named).as_bytes());
    write(&fdir, "rlxc.fish", &fish)?;
    // Each program renamed before it is built (its subcommands are named after it).
    for sub in unbuilt.get_subcommands() {
        let cmd = for_completion(program(sub), sub.get_name());
        let prog = cmd.get_name().to_string();
        let zsh = generate(Shell::Zsh, cmd.clone(), &prog);
        write(&zdir, &format!("_{prog}"), &zsh_names(zsh))?;
        let mut fish = generate(Shell::Fish, cmd, &prog);
        fish.extend(fish_names(&prog, &named).as_bytes());
        write(&fdir, &format!("{prog}.fish"), &fish)?;
    }
    Ok(0)
}

/// bash: `rlxc-NAME ARGS` completes as `rlxc NAME ARGS` does, by the generated `_rlxc`
/// (as the binary runs it; clap_complete's own functions for a program named with a
/// '-' lose their way in its subcommands), and after -n/--name of a command in `named`
/// come the containers of the default lxcpath.
fn bash_programs(names: &[&str], named: &[&str]) -> String {
    let progs: Vec<String> = names.iter().map(|n| format!("rlxc-{n}")).collect();
    format!(
        r#"
# rlxc-NAME ARGS as rlxc NAME ARGS; container names after -n/--name where -n is one.
_rlxc_programs() {{
    local prog=${{1##*/}}
    local -a words=("${{COMP_WORDS[@]}}")
    local cword=$COMP_CWORD
    if [[ $prog == rlxc-* ]]; then
        words=(rlxc "${{prog#rlxc-}}" "${{COMP_WORDS[@]:1}}")
        cword=$((COMP_CWORD + 1))
    fi
    if [[ ( $3 == -n || $3 == --name ) && " {named} " == *" ${{words[1]}} "* ]]; then
        COMPREPLY=($(compgen -W "$(rlxc ls -1 2>/dev/null)" -- "$2"))
        return 0
    fi
    local -a COMP_WORDS=("${{words[@]}}")
    local COMP_CWORD=$cword
    _rlxc "${{words[0]}}" "$2" "$3"
}}
if [[ "${{BASH_VERSINFO[0]}}" -eq 4 && "${{BASH_VERSINFO[1]}}" -ge 4 || "${{BASH_VERSINFO[0]}}" -gt 4 ]]; then
    complete -F _rlxc_programs -o nosort -o bashdefault -o default rlxc {progs}
else
    complete -F _rlxc_programs -o bashdefault -o default rlxc {progs}
fi
"#,
        named = named.join(" "),
        progs = progs.join(" "),
    )
}

/// zsh: CONTAINER values (see `for_completion`) complete with the containers. The
/// helper goes before the generated code, which calls its function at once when
/// autoloaded.
fn zsh_names(generated: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8_lossy(&generated);
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let helper = r#"
(( $+functions[_rlxc_containers] )) ||
_rlxc_containers() {
    local -a names expl
    names=(${(f)"$(rlxc ls -1 2>/dev/null)"})
    _wanted containers expl container compadd -a names
}
"#;
    let rest = rest.replace(
        &format!(":{CONTAINER}:'"),
        &format!(":{CONTAINER}:_rlxc_containers'"),
    );
    format!("{first}\n{helper}{rest}").into_bytes()
}

/// fish: the containers as -n's values, for program `prog` (rlxc: under the commands in
/// `named`; rlxc-NAME: when `named` holds NAME).
fn fish_names(prog: &str, named: &[&str]) -> String {
    let values = "-x -a '(rlxc ls -1 2>/dev/null)' -d container";
    if prog == "rlxc" {
        format!(
            "complete -c rlxc -n \"__fish_rlxc_using_subcommand {}\" -s n -l name {values}\n",
            named.join(" ")
        )
    } else if named.contains(&prog.trim_start_matches("rlxc-")) {
        format!("complete -c {prog} -s n -l name {values}\n")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// What `gen` writes, in a temporary directory (kept while the first is).
    fn generated(gen: fn(GenArgs) -> Result<i32>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_path_buf();
        assert_eq!(gen(GenArgs { dir: out.clone() }).unwrap(), 0);
        (dir, out)
    }

    #[test]
    fn pages_for_every_program_and_nested_command() {
        let (_dir, out) = generated(man);
        let top = read(&out.join("rlxc.1"));
        assert!(top.contains("rlxc\\-start(1)"), "{top}");
        assert!(!top.contains("__gen"), "hidden commands stay out: {top}");
        let ls = read(&out.join("rlxc-image-ls.1"));
        assert!(ls.contains(".TH rlxc-image-ls 1"), "{ls}");
        assert!(ls.contains("\\fBrlxc\\-image ls\\fR"), "its usage: {ls}");
        assert!(read(&out.join("rlxc-start.1")).contains(".SH \"SEE ALSO\""));
    }

    /// The snippets rely on how clap_complete writes a CONTAINER value: a new
    /// clap_complete that writes it otherwise fails here, not silently in a shell.
    #[test]
    fn container_names_complete_after_n_where_it_names_one() {
        let (_dir, out) = generated(completions);
        let start = read(&out.join("zsh/_rlxc-start"));
        assert!(start.contains(":CONTAINER:_rlxc_containers'"), "{start}");
        assert!(!read(&out.join("zsh/_rlxc-create")).contains("CONTAINER"));
        assert!(read(&out.join("zsh/_rlxc")).contains(":CONTAINER:_rlxc_containers'"));
        let fish = read(&out.join("fish/rlxc-start.fish"));
        assert!(
            fish.contains("complete -c rlxc-start -s n -l name -x -a"),
            "{fish}"
        );
        assert!(!read(&out.join("fish/rlxc-create.fish")).contains("rlxc ls -1"));
        let bash = read(&out.join("rlxc"));
        assert!(
            bash.lines().any(|l| l == "_rlxc() {"),
            "clap_complete's function for rlxc"
        );
        let named = bash
            .lines()
            .find(|l| l.contains("== -n ||"))
            .expect("the -n test");
        assert!(
            named.contains(" start ") && !named.contains(" create "),
            "{named}"
        );
    }
}
