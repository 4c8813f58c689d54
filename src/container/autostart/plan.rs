//! Which containers rlxc-autostart acts on and in which waves, as LXC's lxc-autostart
//! picks them: `-g` groups in the order given (the NULL group, written as an empty
//! name, is the containers in no group), each group's containers by `order` (lower
//! first; reversed for a stop), a container only in the first group that names it; `-a`
//! every container whatever its groups; `-A` also those without `autostart.enabled`.
//! Containers of equal order in a group form a wave and are acted on together.

use serde::Serialize;

use crate::config::Autostart;

/// Which containers (LXC's -a, -A, -g).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `-a`: every container, groups ignored.
    pub all: bool,
    /// `-A`: `autostart.enabled` ignored.
    pub ignore_enabled: bool,
    /// `-g`, in order (`config::parse_group_list`); None is the NULL group. Empty: the
    /// NULL group alone.
    pub groups: Vec<Option<String>>,
}

/// One container of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub name: String,
    pub order: i32,
    /// Seconds to wait after its start before the next wave.
    pub delay: u32,
    pub groups: Vec<String>,
}

/// Containers acted on together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Wave {
    /// The group that selected them (None: the NULL group, or every group with -a).
    pub group: Option<String>,
    pub order: i32,
    pub members: Vec<Member>,
}

/// The waves for `containers` (name and settings), in the order they are acted on;
/// `reverse` for stops: higher orders first within each group.
pub fn waves(containers: &[(String, Autostart)], sel: &Selection, reverse: bool) -> Vec<Wave> {
    let mut taken = vec![false; containers.len()];
    let null_only = [None];
    let groups: &[Option<String>] = if sel.all || sel.groups.is_empty() {
        &null_only
    } else {
        &sel.groups
    };
    let mut out = Vec::new();
    for g in groups {
        let mut picked: Vec<&(String, Autostart)> = Vec::new();
        for (i, c) in containers.iter().enumerate() {
            let a = &c.1;
            let wanted = (sel.ignore_enabled || a.enabled) && (sel.all || a.in_group(g.as_deref()));
            if wanted && !taken[i] {
                taken[i] = true;
                picked.push(c);
            }
        }
        picked.sort_by(|x, y| x.1.order.cmp(&y.1.order).then_with(|| x.0.cmp(&y.0)));
        if reverse {
            picked.reverse();
        }
        for (name, a) in picked {
            let m = Member {
                name: name.clone(),
                order: a.order,
                delay: a.delay,
                groups: a.groups.clone(),
            };
            match out.last_mut() {
                Some(Wave {
                    group,
                    order,
                    members,
                }) if group == g && *order == a.order => members.push(m),
                _ => out.push(Wave {
                    group: g.clone(),
                    order: a.order,
                    members: vec![m],
                }),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, enabled: bool, order: i32, groups: &[&str]) -> (String, Autostart) {
        (
            name.into(),
            Autostart {
                enabled,
                order,
                delay: order as u32,
                groups: groups.iter().map(|g| g.to_string()).collect(),
            },
        )
    }

    fn names(w: &[Wave]) -> Vec<Vec<&str>> {
        w.iter()
            .map(|w| w.members.iter().map(|m| m.name.as_str()).collect())
            .collect()
    }

    fn set() -> Vec<(String, Autostart)> {
        vec![
            c("db", true, 1, &[]),
            c("web2", true, 5, &[]),
            c("web1", true, 5, &[]),
            c("off", false, 0, &[]),
            c("dns", true, 9, &["onboot"]),
            c("mail", true, 0, &["onboot", "web"]),
            c("proxy", true, 2, &["web"]),
        ]
    }

    #[test]
    fn default_is_the_null_group_by_order_equal_orders_together() {
        let w = waves(&set(), &Selection::default(), false);
        assert_eq!(names(&w), [vec!["db"], vec!["web1", "web2"]]);
        assert_eq!(w[1].members[0].delay, 5);
        let w = waves(&set(), &Selection::default(), true);
        assert_eq!(names(&w), [vec!["web2", "web1"], vec!["db"]]);
    }

    #[test]
    fn groups_in_the_order_given_each_container_once() {
        let sel = Selection {
            groups: crate::config::parse_group_list(&["onboot,".into(), "web".into()]),
            ..Default::default()
        };
        assert_eq!(
            sel.groups,
            [Some("onboot".into()), None, Some("web".into())]
        );
        let w = waves(&set(), &sel, false);
        // mail is in onboot and web: acted on with onboot only.
        assert_eq!(
            names(&w),
            [
                vec!["mail"],
                vec!["dns"],
                vec!["db"],
                vec!["web1", "web2"],
                vec!["proxy"]
            ]
        );
        assert_eq!(w[0].group.as_deref(), Some("onboot"));
        assert_eq!(w[2].group, None);
    }

    #[test]
    fn all_ignores_groups_and_ignore_enabled_takes_the_rest() {
        let sel = Selection {
            all: true,
            ..Default::default()
        };
        let w = waves(&set(), &sel, false);
        assert_eq!(
            names(&w),
            [
                vec!["mail"],
                vec!["db"],
                vec!["proxy"],
                vec!["web1", "web2"],
                vec!["dns"]
            ]
        );
        let sel = Selection {
            all: true,
            ignore_enabled: true,
            ..Default::default()
        };
        assert_eq!(names(&waves(&set(), &sel, false))[0], ["mail", "off"]);
    }
}
