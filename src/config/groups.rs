//! `-g` group lists (rlxc-autostart, rlxc-ls), read one way by both. lxc-autostart's
//! reading: comma-separated lists, concatenated, an empty entry being the NULL group (the
//! containers in no group). lxc-ls trims blanks around names; group names have none
//! (`Autostart::check`), so both commands drop them too.

use super::Autostart;

/// The entries of `-g` values, each once, in the order first given: a group name, or
/// None, the NULL group, for an entry empty or blank (a leading, trailing or doubled
/// comma, or a value "" or " ").
pub fn parse_group_list(values: &[String]) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = Vec::new();
    for entry in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
        let g = (!entry.is_empty()).then(|| entry.to_string());
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

/// `-g` values as lxc-ls reads them, groups a container must all be in: as
/// `parse_group_list`, but the NULL group with a named one is refused (no container is
/// in no group and in a group), with why, rather than selecting nothing.
pub fn parse_required_groups(values: &[String]) -> Result<Vec<Option<String>>, String> {
    let all = parse_group_list(values);
    let named: Vec<&str> = all.iter().flatten().map(String::as_str).collect();
    if named.is_empty() || !all.contains(&None) {
        return Ok(all);
    }
    Err(format!(
        "-g names {} and an empty entry (a leading, trailing or doubled comma, or \"\"): -g \
         lists groups a container must all be in; an empty entry selects containers in no \
         group and cannot be combined with a named group; drop the empty entry or the names",
        named.join(", ")
    ))
}

impl Autostart {
    /// Whether an entry of a `-g` list selects it: a group it is in, or (None) the NULL
    /// group when it is in no group.
    pub fn in_group(&self, group: Option<&str>) -> bool {
        match group {
            None => self.groups.is_empty(),
            Some(g) => self.groups.iter().any(|h| h == g),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(values: &[&str]) -> Vec<Option<String>> {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        parse_group_list(&values)
    }

    fn some(g: &str) -> Option<String> {
        Some(g.to_string())
    }

    #[test]
    fn blanks_around_names_are_dropped() {
        assert_eq!(parsed(&["a, b"]), [some("a"), some("b")]);
        assert_eq!(parsed(&[" a ,\tb"]), [some("a"), some("b")]);
    }

    #[test]
    fn an_empty_or_blank_entry_is_the_null_group_once() {
        assert_eq!(parsed(&["a,,b"]), [some("a"), None, some("b")]);
        assert_eq!(parsed(&[" "]), [None]);
        assert_eq!(parsed(&[""]), [None]);
        assert_eq!(parsed(&["onboot,"]), [some("onboot"), None]);
        assert_eq!(
            parsed(&[",dns", "", "dns, ,web"]),
            [None, some("dns"), some("web")]
        );
        assert_eq!(parsed(&[]), Vec::<Option<String>>::new());
    }

    #[test]
    fn required_groups_refuse_a_name_with_the_null_group() {
        let req = |v: &[&str]| {
            let v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            parse_required_groups(&v)
        };
        assert_eq!(req(&["web,db"]), Ok(vec![some("web"), some("db")]));
        assert_eq!(req(&[",", ""]), Ok(vec![None]));
        for bad in [&["web,"][..], &["web", ""], &[",web, db"]] {
            let e = req(bad).unwrap_err();
            assert!(e.contains("web") && e.contains("an empty entry"), "{e}");
            assert!(e.contains("cannot be combined with a named group"), "{e}");
        }
        assert!(req(&[",web, db"])
            .unwrap_err()
            .starts_with("-g names web, db and"));
    }

    #[test]
    fn the_null_group_selects_containers_in_no_group() {
        let none = Autostart::default();
        let web = Autostart {
            groups: vec!["web".into(), "onboot".into()],
            ..Default::default()
        };
        assert!(none.in_group(None));
        assert!(!none.in_group(Some("web")));
        assert!(!web.in_group(None));
        assert!(web.in_group(Some("web")));
        assert!(web.in_group(Some("onboot")));
        assert!(!web.in_group(Some("we")));
    }
}
