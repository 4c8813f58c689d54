//! Man pages and shell completions, made from the clap definitions by the hidden
//! `rlxc __gen-man DIR` and `rlxc __gen-completions DIR` (packaging/build-deb.sh), so
//! they never drift from the binary. Small hand-written generators: clap_mangen and
//! clap_complete could replace them where crates can be fetched.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command, CommandFactory};

use crate::error::{IoContext, Result};

#[derive(clap::Args, Debug)]
pub struct GenArgs {
    /// Directory to write into (created).
    dir: PathBuf,
}

/// The multi-call binary's commands, as `rlxc-NAME` (the hidden ones left out).
fn commands() -> (Command, Vec<Command>) {
    let mut top = super::Cli::command();
    top.build();
    let subs = top
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .cloned()
        .collect();
    (top, subs)
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let p = dir.join(name);
    std::fs::write(&p, text).ctx("write", &p)
}

/// roff text: backslashes and leading dots or quotes made literal.
fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    s.lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn flags(a: &Arg) -> String {
    let mut f = Vec::new();
    if let Some(s) = a.get_short() {
        f.push(format!("\\fB\\-{s}\\fR"));
    }
    if let Some(l) = a.get_long() {
        f.push(format!("\\fB\\-\\-{}\\fR", roff(l)));
    }
    let mut out = f.join(", ");
    let takes_value = matches!(a.get_action(), ArgAction::Set | ArgAction::Append);
    if takes_value {
        let v = a
            .get_value_names()
            .and_then(|v| v.first().map(|s| s.to_string()))
            .unwrap_or_else(|| a.get_id().as_str().to_uppercase());
        if out.is_empty() {
            out = format!("\\fI{}\\fR", roff(&v));
        } else {
            out += &format!(" \\fI{}\\fR", roff(&v));
        }
    }
    out
}

/// One page: NAME, SYNOPSIS, DESCRIPTION, OPTIONS, SEE ALSO.
fn page(cmd: &mut Command, name: &str, section_see: &[String]) -> String {
    let about = cmd.get_about().map(|s| s.to_string()).unwrap_or_default();
    let usage = cmd.render_usage().to_string();
    let usage = usage
        .trim_start_matches("Usage:")
        .trim()
        .replacen("rlxc ", "rlxc-", 1);
    let mut t = String::new();
    let _ = writeln!(
        t,
        ".TH {} 1 \"\" \"rlxc {}\" \"rlxc\"",
        name.to_uppercase(),
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(t, ".SH NAME\n{} \\- {}", roff(name), roff(&about));
    let _ = writeln!(t, ".SH SYNOPSIS\n\\fB{}\\fR", roff(&usage));
    if let Some(long) = cmd.get_long_about() {
        let _ = writeln!(t, ".SH DESCRIPTION\n{}", roff(&long.to_string()));
    } else {
        let _ = writeln!(t, ".SH DESCRIPTION\n{}", roff(&about));
    }
    let args: Vec<&Arg> = cmd.get_arguments().filter(|a| !a.is_hide_set()).collect();
    if !args.is_empty() {
        let _ = writeln!(t, ".SH OPTIONS");
        for a in args {
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            let mut help = roff(&help);
            let defaults: Vec<String> = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            if !defaults.is_empty() && a.get_action().takes_values() {
                help += &format!(" (default: {})", roff(&defaults.join(",")));
            }
            let _ = writeln!(t, ".TP\n{}\n{help}", flags(a));
        }
    }
    let _ = writeln!(t, ".SH SEE ALSO\n{}", section_see.join(",\n"));
    t
}

pub fn man(a: GenArgs) -> Result<i32> {
    std::fs::create_dir_all(&a.dir).ctx("create", &a.dir)?;
    let (mut top, subs) = commands();
    let see: Vec<String> = ["rlxc(1)", "rlxc.toml(5)", "rlxc\\-config(5)"]
        .iter()
        .map(|s| format!("\\fB{s}\\fR"))
        .collect();
    let mut list = String::new();
    for c in &subs {
        let about = c.get_about().map(|s| s.to_string()).unwrap_or_default();
        let _ = writeln!(
            list,
            ".TP\n\\fBrlxc\\-{}\\fR(1)\n{}",
            roff(c.get_name()),
            roff(&about)
        );
    }
    let mut main = page(&mut top, "rlxc", &see);
    main = main.replacen(
        ".SH OPTIONS",
        &format!(
            ".SH COMMANDS\n\\fBrlxc CMD ARGS\\fR and \\fBrlxc\\-CMD ARGS\\fR are the same.\n{list}.SH OPTIONS"
        ),
        1,
    );
    write(&a.dir, "rlxc.1", &main)?;
    for mut c in subs {
        let name = format!("rlxc-{}", c.get_name());
        write(&a.dir, &format!("{name}.1"), &page(&mut c, &name, &see))?;
    }
    Ok(0)
}

/// A command's options as completion words: `-x` and `--long`.
fn words(c: &Command) -> Vec<String> {
    let mut w = Vec::new();
    for a in c.get_arguments().filter(|a| !a.is_hide_set()) {
        if let Some(s) = a.get_short() {
            w.push(format!("-{s}"));
        }
        if let Some(l) = a.get_long() {
            w.push(format!("--{l}"));
        }
    }
    w
}

pub fn completions(a: GenArgs) -> Result<i32> {
    std::fs::create_dir_all(&a.dir).ctx("create", &a.dir)?;
    let (_, subs) = commands();
    let names: Vec<&str> = subs.iter().map(|c| c.get_name()).collect();
    // bash: one function for rlxc and every rlxc-NAME; `-n` completes container names.
    let mut bash = String::from(
        "# bash completion for rlxc (generated by rlxc __gen-completions)\n\
         _rlxc_names() { rlxc ls -1 2>/dev/null; }\n\
         _rlxc() {\n    local cur prev cmd words\n    cur=${COMP_WORDS[COMP_CWORD]}\n    prev=${COMP_WORDS[COMP_CWORD-1]}\n    cmd=${COMP_WORDS[0]##*/}\n    cmd=${cmd#rlxc-}\n\
         \x20   if [ \"$cmd\" = rlxc ]; then\n        if [ \"$COMP_CWORD\" = 1 ]; then COMPREPLY=($(compgen -W \"",
    );
    bash += &names.join(" ");
    bash += "\" -- \"$cur\")); return; fi\n        cmd=${COMP_WORDS[1]}\n    fi\n    case $prev in -n|--name) COMPREPLY=($(compgen -W \"$(_rlxc_names)\" -- \"$cur\")); return ;; esac\n    case $cmd in\n";
    for c in &subs {
        let _ = writeln!(
            bash,
            "        {}) words=\"{}\" ;;",
            c.get_name(),
            words(c).join(" ")
        );
    }
    bash +=
        "    esac\n    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}\ncomplete -F _rlxc rlxc";
    for n in &names {
        let _ = write!(bash, " rlxc-{n}");
    }
    bash.push('\n');
    write(&a.dir, "rlxc", &bash)?;

    // zsh: the commands and each one's options.
    let mut zsh = String::from("#compdef rlxc");
    for n in &names {
        let _ = write!(zsh, " rlxc-{n}");
    }
    zsh += "\n# zsh completion for rlxc (generated by rlxc __gen-completions)\n_rlxc() {\n  local cmd=${service#rlxc-}\n  if [[ $service == rlxc ]]; then\n    if (( CURRENT == 2 )); then compadd -- ";
    zsh += &names.join(" ");
    zsh += "; return; fi\n    cmd=${words[2]}\n  fi\n  if [[ ${words[CURRENT-1]} == (-n|--name) ]]; then compadd -- ${(f)\"$(rlxc ls -1 2>/dev/null)\"}; return; fi\n  case $cmd in\n";
    for c in &subs {
        let _ = writeln!(
            zsh,
            "    {}) compadd -- {} ;;",
            c.get_name(),
            words(c).join(" ")
        );
    }
    zsh += "  esac\n}\n_rlxc \"$@\"\n";
    write(&a.dir, "_rlxc", &zsh)?;

    // fish: subcommands of rlxc, and each rlxc-NAME's options.
    let mut fish =
        String::from("# fish completion for rlxc (generated by rlxc __gen-completions)\n");
    for c in &subs {
        let about = c
            .get_about()
            .map(|s| s.to_string())
            .unwrap_or_default()
            .replace('\'', "\\'");
        let _ = writeln!(
            fish,
            "complete -c rlxc -n '__fish_use_subcommand' -f -a {} -d '{about}'",
            c.get_name()
        );
        for a in c.get_arguments().filter(|a| !a.is_hide_set()) {
            let help = a
                .get_help()
                .map(|h| h.to_string())
                .unwrap_or_default()
                .replace('\'', "\\'");
            let mut opt = String::new();
            if let Some(s) = a.get_short() {
                let _ = write!(opt, " -s {s}");
            }
            if let Some(l) = a.get_long() {
                let _ = write!(opt, " -l {l}");
            }
            if opt.is_empty() {
                continue;
            }
            let names = if a.get_id() == "name" {
                " -x -a '(rlxc ls -1 2>/dev/null)'"
            } else {
                ""
            };
            let _ = writeln!(
                fish,
                "complete -c rlxc-{}{opt}{names} -d '{help}'",
                c.get_name()
            );
            let _ = writeln!(
                fish,
                "complete -c rlxc -n '__fish_seen_subcommand_from {}'{opt}{names} -d '{help}'",
                c.get_name()
            );
        }
    }
    write(&a.dir, "rlxc.fish", &fish)?;
    Ok(0)
}
