//! The policy file (DESIGN §9) a stack runs with; small blocks and short intervals for tests.

use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct PolicyFile {
    pub mount: PathBuf,
    pub changelog_user: String,
    pub url: String,
    pub retries: u32,
    pub request_timeout: String,
    /// `autoexport.path`.
    pub prefix: String,
    /// `autoexport.enabled`.
    pub autoexport: bool,
    pub exclude: Vec<String>,
    pub min_age: String,
    pub logs: String,
    pub max_actions: u32,
    pub block_size: String,
    pub blocks_in_flight: u32,
    pub update_interval: String,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    /// Extra `key = value` lines per section name (e.g. `("blob", "account_key_file = ...")`).
    pub extra: Vec<(String, String)>,
}

impl PolicyFile {
    pub fn new(mount: &Path, user: &str, url: &str, logs: &str, dir: &Path) -> PolicyFile {
        PolicyFile {
            mount: mount.to_path_buf(),
            changelog_user: user.to_string(),
            url: url.to_string(),
            retries: 5,
            request_timeout: "20s".into(),
            prefix: String::new(),
            autoexport: true,
            exclude: Vec::new(),
            min_age: "0s".into(),
            logs: logs.to_string(),
            max_actions: 16,
            block_size: "64KiB".into(),
            blocks_in_flight: 4,
            update_interval: "1s".into(),
            socket: dir.join("lustre-blob.sock"),
            state_dir: dir.join("state"),
            extra: Vec::new(),
        }
    }

    fn extra(&self, section: &str) -> String {
        self.extra
            .iter()
            .filter(|(s, _)| s == section)
            .map(|(_, l)| format!("{l}\n"))
            .collect()
    }

    pub fn to_toml(&self) -> String {
        let q = |s: &str| format!("{s:?}");
        let excl: Vec<String> = self.exclude.iter().map(|e| q(e)).collect();
        format!(
            "[lustre]\nmount = {}\narchive_id = 1\nchangelog_user = {}\n{}\n\
             [blob]\nurl = {}\nuse_emulator = true\nrequest_timeout = {}\nretries = {}\n{}\n\
             [autoexport]\nenabled = {}\npath = {}\nexclude = [{}]\nmin_age = {}\n{}\n\
             [logging]\ncontainer = {}\n{}\n\
             [copytool]\nmax_actions = {}\nblock_size = {}\nblocks_in_flight = {}\nupdate_interval = {}\n{}\n\
             [control]\nsocket = {}\nstate_dir = {}\n{}",
            q(&self.mount.display().to_string()),
            q(&self.changelog_user),
            self.extra("lustre"),
            q(&self.url),
            q(&self.request_timeout),
            self.retries,
            self.extra("blob"),
            self.autoexport,
            q(&self.prefix),
            excl.join(", "),
            q(&self.min_age),
            self.extra("autoexport"),
            q(&self.logs),
            self.extra("logging"),
            self.max_actions,
            q(&self.block_size),
            self.blocks_in_flight,
            q(&self.update_interval),
            self.extra("copytool"),
            q(&self.socket.display().to_string()),
            q(&self.state_dir.display().to_string()),
            self.extra("control"),
        )
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.to_toml()).expect("write policy file");
    }
}
