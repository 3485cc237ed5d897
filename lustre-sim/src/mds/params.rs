//! `lctl get_param` / `set_param` over the simulated MDTs, plus changelog users.

use super::state::*;
use crate::consts::*;

pub(crate) fn glob(pat: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(b'*') => (0..=s.len()).any(|i| !s[..i].contains(&b'.') && m(&p[1..], &s[i..])),
            Some(b'?') => !s.is_empty() && m(&p[1..], &s[1..]),
            Some(c) => s.first() == Some(c) && m(&p[1..], &s[1..]),
        }
    }
    m(pat.as_bytes(), s.as_bytes())
}

fn ext(off: u64, len: u64) -> String {
    let end = if len == u64::MAX {
        u64::MAX
    } else {
        off.saturating_add(len)
    };
    format!("{:#x}-{:#x}", off, end)
}

impl State {
    pub fn mdt_name(&self, i: u32) -> String {
        format!("{}-MDT{:04x}", self.fsname, i)
    }

    fn policy_str(t: &Tunables) -> String {
        let f = |on: bool, n: &str| {
            if on {
                format!("[{}]", n)
            } else {
                n.to_string()
            }
        };
        format!(
            "{} {}",
            f(t.policy_nbr, "NonBlockingRestore"),
            f(t.policy_nra, "NoRetryAction")
        )
    }

    fn action_line(&self, r: &Req, idx: usize) -> String {
        let data: String = r.data.iter().map(|b| format!("{:02X}", b)).collect();
        format!(
            "lrh=[type=10680000 len={} idx=1/{}] fid={} dfid={} compound/cookie=0/{:#x} action={} archive#={} flags={:#x} extent={} gid=0x0 datalen={} status={} data=[{}]",
            136 + a8(r.data.len()),
            idx,
            r.fid,
            r.dfid,
            r.cookie,
            hsm_action_name(r.action),
            r.archive_id,
            r.flags,
            ext(r.offset, r.length),
            r.data.len(),
            ars_name(r.status),
            data
        )
    }

    /// Every (name, value) this MDT set exposes.
    pub fn params(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, m) in self.mdts.iter().enumerate() {
            let i = i as u32;
            let p = format!("mdt.{}.", self.mdt_name(i));
            let t = &m.tun;
            out.push((format!("{}hsm_control", p), t.hsm_control.clone()));
            out.push((format!("{}hsm.max_requests", p), t.max_requests.to_string()));
            out.push((
                format!("{}hsm.active_request_timeout", p),
                t.active_request_timeout.to_string(),
            ));
            out.push((format!("{}hsm.loop_period", p), t.loop_period.to_string()));
            out.push((format!("{}hsm.grace_delay", p), t.grace_delay.to_string()));
            out.push((
                format!("{}hsm.default_archive_id", p),
                t.default_archive_id.to_string(),
            ));
            out.push((format!("{}hsm.policy", p), Self::policy_str(t)));
            out.push((
                format!("{}hsm.archive_count", p),
                m.archive_count.to_string(),
            ));
            out.push((
                format!("{}hsm.restore_count", p),
                m.restore_count.to_string(),
            ));
            out.push((format!("{}hsm.remove_count", p), m.remove_count.to_string()));
            let actions: Vec<String> = self
                .reqs
                .values()
                .filter(|r| r.mdt == i)
                .enumerate()
                .map(|(k, r)| self.action_line(r, k + 1))
                .collect();
            out.push((format!("{}hsm.actions", p), actions.join("\n")));
            let active: Vec<String> = self
                .reqs
                .values()
                .filter(|r| r.mdt == i && r.status == ARS_STARTED)
                .map(|r| {
                    let uuid = r.agent.and_then(|a| self.agents.iter().find(|x| x.id == a)).map(|a| a.uuid.clone()).unwrap_or_default();
                    format!(
                        "fid={} dfid={} compound/cookie=0/{:#x} action={} archive#={} flags={:#x} extent={} gid=0x0 data=[{}] canceled={} uuid={} done={}",
                        r.fid,
                        r.dfid,
                        r.cookie,
                        hsm_action_name(r.action),
                        r.archive_id,
                        r.flags,
                        ext(r.offset, r.length),
                        r.data.len(),
                        r.canceled as u32,
                        uuid,
                        r.bytes_moved()
                    )
                })
                .collect();
            out.push((format!("{}hsm.active_requests", p), active.join("\n")));
            let agents: Vec<String> = self
                .agents
                .iter()
                .filter(|a| a.mdts.contains(&i))
                .map(|a| {
                    let ids = if a.archives.is_empty() || a.archives.contains(&0) {
                        "ANY".to_string()
                    } else {
                        a.archives
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    let cur = self
                        .reqs
                        .values()
                        .filter(|r| r.status == ARS_STARTED && r.agent == Some(a.id))
                        .count();
                    format!(
                        "uuid={} archive_id={} requests=[current:{} ok:{} errors:{}]",
                        a.uuid, ids, cur, a.ok, a.errors
                    )
                })
                .collect();
            out.push((format!("{}hsm.agents", p), agents.join("\n")));
            let now = now_secs();
            let mut users = format!(
                "current_index: {}\nID                            index (idle) mask",
                m.index
            );
            for u in &m.users {
                users.push_str(&format!(
                    "\n{:<28} {:>7} ({})",
                    u.label(),
                    u.clear,
                    now.saturating_sub(u.since)
                ));
            }
            out.push((format!("mdd.{}.changelog_users", self.mdt_name(i)), users));
        }
        out
    }

    pub fn get_param(&self, pattern: &str) -> Result<Vec<(String, String)>, i32> {
        let v: Vec<_> = self
            .params()
            .into_iter()
            .filter(|(n, _)| glob(pattern, n))
            .collect();
        if v.is_empty() {
            return Err(libc::ENOENT);
        }
        Ok(v)
    }

    pub fn set_param(&mut self, name: &str, value: &str) -> Result<(), i32> {
        let names: Vec<String> = self
            .params()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| glob(name, n))
            .collect();
        if names.is_empty() {
            return Err(libc::ENOENT);
        }
        for full in names {
            let mut parts = full.splitn(3, '.');
            let (_, mdtname, key) = (
                parts.next(),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let Some(i) = (0..self.mdts.len() as u32).find(|i| self.mdt_name(*i) == mdtname) else {
                return Err(libc::ENOENT);
            };
            let num = || value.trim().parse::<u64>().map_err(|_| libc::EINVAL);
            let t = &mut self.mdts[i as usize].tun;
            match key {
                "hsm_control" => match value.trim() {
                    "enabled" | "disabled" | "shutdown" => t.hsm_control = value.trim().to_string(),
                    "purge" => self.purge_requests(i),
                    _ => return Err(libc::EINVAL),
                },
                "hsm.max_requests" => t.max_requests = num()? as u32,
                "hsm.active_request_timeout" => t.active_request_timeout = num()?.max(1),
                "hsm.loop_period" => t.loop_period = num()?.max(1),
                "hsm.grace_delay" => t.grace_delay = num()?,
                "hsm.default_archive_id" => t.default_archive_id = num()? as u32,
                "hsm.policy" => {
                    for tok in value.split_whitespace() {
                        let (on, n) = match tok.as_bytes()[0] {
                            b'+' => (true, &tok[1..]),
                            b'-' => (false, &tok[1..]),
                            _ => (true, tok),
                        };
                        match n {
                            "NRA" | "NoRetryAction" => t.policy_nra = on,
                            "NBR" | "NonBlockingRestore" => t.policy_nbr = on,
                            _ => return Err(libc::EINVAL),
                        }
                    }
                }
                _ => return Err(libc::EACCES),
            }
            self.touch_mdt(i);
        }
        self.dispatch();
        Ok(())
    }

    pub fn changelog_register(&mut self, mdt: u32, name: Option<String>) -> Result<String, i32> {
        if let Some(n) = &name {
            let ok = n.len() <= 15
                && n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(libc::EINVAL);
            }
        }
        let m = self.mdts.get_mut(mdt as usize).ok_or(libc::ENODEV)?;
        let id = m.next_user.max(1);
        m.next_user = id + 1;
        // A new user starts at the current index: it never sees records it was not there for.
        let u = User {
            id,
            name,
            clear: m.index,
            since: now_secs(),
        };
        let label = u.label();
        m.users.push(u);
        self.touch_mdt(mdt);
        Ok(label)
    }

    fn find_user(&self, mdt: u32, user: &str) -> Result<usize, i32> {
        let m = self.mdts.get(mdt as usize).ok_or(libc::ENODEV)?;
        let base = user.split('-').next().unwrap_or(user);
        let id: u32 = base
            .strip_prefix("cl")
            .and_then(|s| s.parse().ok())
            .ok_or(libc::EINVAL)?;
        m.users.iter().position(|u| u.id == id).ok_or(libc::ENOENT)
    }

    pub fn changelog_deregister(&mut self, mdt: u32, user: &str) -> Result<(), i32> {
        let k = self.find_user(mdt, user)?;
        self.mdts[mdt as usize].users.remove(k);
        self.touch_mdt(mdt);
        self.purge(mdt);
        Ok(())
    }

    pub fn changelog_clear(&mut self, mdt: u32, user: &str, endrec: u64) -> Result<(), i32> {
        let k = self.find_user(mdt, user)?;
        let m = &mut self.mdts[mdt as usize];
        let end = if endrec == 0 { m.index } else { endrec };
        if end > m.index {
            return Err(libc::EINVAL);
        }
        let u = &mut m.users[k];
        if end < u.clear {
            return Err(libc::EINVAL);
        }
        u.clear = end;
        u.since = now_secs();
        self.touch_mdt(mdt);
        self.purge(mdt);
        Ok(())
    }
}

fn a8(x: usize) -> usize {
    (x + 7) & !7
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_matches_one_component_per_star() {
        assert!(glob(
            "mdt.*.hsm.max_requests",
            "mdt.fs-MDT0000.hsm.max_requests"
        ));
        assert!(!glob(
            "mdt.*.max_requests",
            "mdt.fs-MDT0000.hsm.max_requests"
        ));
        assert!(glob(
            "mdt.fs-MDT000?.hsm_control",
            "mdt.fs-MDT0001.hsm_control"
        ));
    }
}
