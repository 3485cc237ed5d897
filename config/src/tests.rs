use super::*;

const MIN: &str =
    "[lustre]\nmount = \"/mnt/lustre\"\n[blob]\nurl = \"https://acct.blob.core.windows.net/c\"\n";

fn parse(text: &str) -> Result<Policy, ConfigError> {
    Policy::from_toml(text, Path::new("policy.toml"))
}

fn refuse(text: &str) -> ConfigError {
    match parse(text) {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => e,
    }
}

/// The minimal file plus `extra` lines appended to section `section` (added after MIN).
fn with(section: &str, lines: &str) -> String {
    let header = format!("[{section}]\n");
    if MIN.contains(&header) {
        MIN.replacen(&header, &format!("{header}{lines}\n"), 1)
    } else {
        format!("{MIN}{header}{lines}\n")
    }
}

#[test]
fn minimal_file_gets_every_default() {
    let p = parse(MIN).unwrap();
    assert_eq!(p.lustre.mount, PathBuf::from("/mnt/lustre"));
    assert_eq!(p.lustre.archive_id, 1);
    assert_eq!(p.lustre.changelog_user, "cl1");
    assert_eq!(p.lustre.mdts, None);
    assert_eq!(p.lustre.changelog_interval, ChangelogInterval::Auto);
    assert_eq!(p.blob.url, "https://acct.blob.core.windows.net/c");
    assert!(!p.blob.use_emulator);
    assert_eq!(p.blob.account_key_file, None);
    assert_eq!(p.blob.sas_token_file, None);
    assert_eq!(p.blob.connection_string_file, None);
    assert_eq!(p.blob.request_timeout, Duration::from_secs(60));
    assert_eq!(p.blob.retries, 5);
    assert!(p.autoexport.enabled);
    assert_eq!(p.autoexport.path, vec![String::new()]);
    assert!(p.autoexport.exclude.is_empty());
    assert_eq!(p.autoexport.min_age, Duration::ZERO);
    assert_eq!(p.autoexport.metadata, MetadataMode::Ignore);
    assert_eq!(p.autoexport.on_delete, DeleteMode::Keep);
    assert_eq!(p.autoexport.on_rename, RenameMode::Keep);
    assert_eq!(p.autoexport.conflict, ConflictMode::Fail);
    assert_eq!(p.autoexport.batch_size, 1000);
    assert_eq!(p.autoexport.max_in_flight, 1024);
    assert_eq!(p.autoexport.queue_target, Duration::from_millis(500));
    assert_eq!(p.autoexport.min_in_flight, 32);
    assert_eq!(p.logging.container, "lustre-logs");
    assert_eq!(p.copytool.max_actions, 32);
    assert_eq!(p.copytool.block_size, 8 << 20);
    assert_eq!(p.copytool.blocks_in_flight, 16);
    assert_eq!(p.copytool.update_interval, Duration::from_secs(10));
    assert_eq!(p.copytool.bandwidth, None);
    assert_eq!(p.copytool.metrics, None);
    assert_eq!(
        p.control.socket,
        PathBuf::from("/run/lustre-blob/lustre-blob.sock")
    );
    assert_eq!(p.control.state_dir, PathBuf::from("/var/lib/lustre-blob"));
    assert_eq!(p.control.metrics, None);
    assert!(!p.import.keep_special_bits);
    assert!(!p.blob.allow_shared_credentials_file);
    // Empty sections mean the same as absent ones.
    let sections = format!("{MIN}[autoexport]\n[logging]\n[copytool]\n[control]\n[import]\n");
    assert_eq!(parse(&sections).unwrap(), p);
}

#[test]
fn example_file_parses_and_matches_the_defaults() {
    let text = include_str!("../policy.example.toml");
    let p = parse(text).unwrap();
    let d = parse(MIN).unwrap();
    assert_eq!(p.lustre.archive_id, d.lustre.archive_id);
    assert_eq!(p.autoexport, d.autoexport);
    assert_eq!(p.logging, d.logging);
    assert_eq!(p.copytool, d.copytool);
    assert_eq!(p.control, d.control);
    assert_eq!(p.import, d.import);
    assert_eq!(
        p.blob.allow_shared_credentials_file,
        d.blob.allow_shared_credentials_file
    );
    assert_eq!(p.blob.request_timeout, d.blob.request_timeout);
    assert_eq!(p.blob.retries, d.blob.retries);
}

#[test]
fn example_file_documents_every_key() {
    let text = include_str!("../policy.example.toml");
    for key in [
        "mount =",
        "archive_id =",
        "changelog_user =",
        "mdts =",
        "changelog_interval =",
        "url =",
        "use_emulator =",
        "account_key_file =",
        "sas_token_file =",
        "connection_string_file =",
        "request_timeout =",
        "retries =",
        "enabled =",
        "path =",
        "exclude =",
        "min_age =",
        "metadata =",
        "on_delete =",
        "on_rename =",
        "conflict =",
        "batch_size =",
        "max_in_flight =",
        "queue_target =",
        "min_in_flight =",
        "container =",
        "max_actions =",
        "block_size =",
        "blocks_in_flight =",
        "update_interval =",
        "bandwidth =",
        "socket =",
        "state_dir =",
        "metrics =",
        "allow_shared_credentials_file =",
        "keep_special_bits =",
    ] {
        assert!(text.contains(key), "example lacks {key}");
    }
}

/// Keys with the same name in two sections (`metrics`) must be documented in each.
#[test]
fn example_file_documents_metrics_in_copytool_and_control() {
    let text = include_str!("../policy.example.toml");
    for section in ["[copytool]", "[control]"] {
        let start = text.find(section).unwrap_or_else(|| panic!("no {section}"));
        let body = &text[start + section.len()..];
        let end = body.find("\n[").unwrap_or(body.len());
        assert!(
            body[..end].contains("# metrics = \"127.0.0.1:"),
            "{section} lacks metrics"
        );
    }
}

#[test]
fn every_key_can_be_set() {
    let text = r#"
[lustre]
mount = "/lustre/fs1"
archive_id = 7
changelog_user = "cl12-export"
mdts = ["fs1-MDT0000", "fs1-MDT001f"]
changelog_interval = "250ms"
[blob]
url = "http://127.0.0.1:10000/devstoreaccount1/exp/pre"
use_emulator = true
account_key_file = "/k"
sas_token_file = "/s"
connection_string_file = "/c"
request_timeout = "2m"
retries = 0
allow_shared_credentials_file = true
[autoexport]
enabled = false
path = ["projects/", "home/a"]
exclude = ["*.tmp", "**/.cache/**"]
min_age = "5m"
metadata = "sync"
on_delete = "delete"
on_rename = "move"
conflict = "overwrite"
batch_size = 52
max_in_flight = 128
queue_target = "750ms"
min_in_flight = 64
[logging]
container = "my-logs-2"
[copytool]
max_actions = 4
block_size = "1GiB"
blocks_in_flight = 2
update_interval = "1s"
bandwidth = "100MiB"
metrics = "127.0.0.1:9465"
[control]
socket = "/tmp/x.sock"
state_dir = "/tmp/state"
metrics = "127.0.0.1:9464"
[import]
keep_special_bits = true
"#;
    let p = parse(text).unwrap();
    assert_eq!(p.lustre.mount, PathBuf::from("/lustre/fs1"));
    assert_eq!(p.lustre.archive_id, 7);
    assert_eq!(p.lustre.changelog_user, "cl12-export");
    assert_eq!(
        p.lustre.mdts,
        Some(vec!["fs1-MDT0000".into(), "fs1-MDT001f".into()])
    );
    assert!(p.blob.use_emulator);
    assert_eq!(p.blob.account_key_file, Some(PathBuf::from("/k")));
    assert_eq!(p.blob.sas_token_file, Some(PathBuf::from("/s")));
    assert_eq!(p.blob.connection_string_file, Some(PathBuf::from("/c")));
    assert_eq!(p.blob.request_timeout, Duration::from_secs(120));
    assert_eq!(p.blob.retries, 0);
    assert!(!p.autoexport.enabled);
    assert_eq!(
        p.autoexport.path,
        vec!["projects".to_string(), "home/a".to_string()]
    );
    assert_eq!(p.export_paths(), ["projects", "home/a"]);
    assert_eq!(
        p.autoexport.exclude,
        vec!["*.tmp".to_string(), "**/.cache/**".to_string()]
    );
    assert_eq!(p.autoexport.min_age, Duration::from_secs(300));
    assert_eq!(p.autoexport.metadata, MetadataMode::Sync);
    assert_eq!(p.autoexport.on_delete, DeleteMode::Delete);
    assert_eq!(p.autoexport.on_rename, RenameMode::Move);
    assert_eq!(p.autoexport.conflict, ConflictMode::Overwrite);
    assert_eq!(p.autoexport.batch_size, 52);
    assert_eq!(p.autoexport.max_in_flight, 128);
    assert_eq!(p.autoexport.queue_target, Duration::from_millis(750));
    assert_eq!(p.autoexport.min_in_flight, 64);
    assert_eq!(
        p.lustre.changelog_interval,
        ChangelogInterval::Every(Duration::from_millis(250))
    );
    assert_eq!(p.logging.container, "my-logs-2");
    assert_eq!(p.copytool.max_actions, 4);
    assert_eq!(p.copytool.block_size, 1 << 30);
    assert_eq!(p.copytool.blocks_in_flight, 2);
    assert_eq!(p.copytool.update_interval, Duration::from_secs(1));
    assert_eq!(p.copytool.bandwidth, Some(100 << 20));
    assert_eq!(p.copytool.metrics, Some("127.0.0.1:9465".parse().unwrap()));
    assert_eq!(p.control.socket, PathBuf::from("/tmp/x.sock"));
    assert_eq!(p.control.state_dir, PathBuf::from("/tmp/state"));
    assert_eq!(p.control.metrics, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(p.blob_target(), p.blob);
    assert!(p.blob.allow_shared_credentials_file);
    assert!(p.import.keep_special_bits);
}

#[test]
fn single_path_string_is_normalised() {
    let p = parse(&with("autoexport", "path = \"projects/\"")).unwrap();
    assert_eq!(p.autoexport.path, vec!["projects".to_string()]);
    let p = parse(&with("autoexport", "path = \"a//b\"")).unwrap_err();
    assert_eq!(p.key(), "autoexport.path");
}

#[test]
fn block_size_accepts_a_bare_integer() {
    let p = parse(&with("copytool", "block_size = 1048576")).unwrap();
    assert_eq!(p.copytool.block_size, 1 << 20);
}

#[test]
fn queue_target_zero_is_accepted_and_ten_minutes_is_the_most() {
    let p = parse(&with("autoexport", "queue_target = \"0s\"")).unwrap();
    assert_eq!(p.autoexport.queue_target, Duration::ZERO);
    let p = parse(&with("autoexport", "queue_target = \"10min\"")).unwrap();
    assert_eq!(p.autoexport.queue_target, Duration::from_secs(600));
    assert!(parse(&with("autoexport", "queue_target = \"601s\"")).is_err());
}

#[test]
fn changelog_interval_is_auto_or_a_tenth_of_a_second_to_a_minute() {
    let every = |text: &str| {
        parse(&with("lustre", text))
            .unwrap()
            .lustre
            .changelog_interval
    };
    assert_eq!(
        every("changelog_interval = \"100ms\""),
        ChangelogInterval::Every(Duration::from_millis(100))
    );
    assert_eq!(
        every("changelog_interval = \"1m\""),
        ChangelogInterval::Every(Duration::from_secs(60))
    );
    assert_eq!(
        every("changelog_interval = \"1s\""),
        ChangelogInterval::Every(FOLLOW_INTERVAL)
    );
    assert_eq!(
        every("changelog_interval = \"auto\""),
        ChangelogInterval::Auto
    );
}

/// (section, line, key, fragment of the message) for every refusal.
const REFUSALS: &[(&str, &str, &str, &str)] = &[
    (
        "lustre",
        "changelog_interval = \"50ms\"",
        "lustre.changelog_interval",
        "must be \"auto\" or 100ms to 60s, got 50 ms",
    ),
    (
        "lustre",
        "changelog_interval = \"61s\"",
        "lustre.changelog_interval",
        "must be \"auto\" or 100ms to 60s, got 61000 ms",
    ),
    (
        "lustre",
        "changelog_interval = \"often\"",
        "lustre.changelog_interval",
        "must be \"auto\" or an interval: invalid duration \"often\"",
    ),
    (
        "autoexport",
        "min_age = \"5 parsecs\"",
        "autoexport.min_age",
        "invalid duration \"5 parsecs\"",
    ),
    (
        "autoexport",
        "min_age = 5",
        "autoexport.min_age",
        "invalid type",
    ),
    (
        "autoexport",
        "path = \"/abs\"",
        "autoexport.path",
        "relative",
    ),
    (
        "autoexport",
        "path = \"a/../b\"",
        "autoexport.path",
        "\"..\"",
    ),
    ("autoexport", "path = \"a/./b\"", "autoexport.path", "\".\""),
    (
        "autoexport",
        "path = \"a\\u0001b\"",
        "autoexport.path",
        "control",
    ),
    ("autoexport", "path = []", "autoexport.path", "at least one"),
    (
        "autoexport",
        "path = 3",
        "autoexport.path",
        "string or a list",
    ),
    (
        "autoexport",
        "exclude = [\"a[\"]",
        "autoexport.exclude",
        "invalid glob \"a[\"",
    ),
    (
        "autoexport",
        "exclude = \"*.tmp\"",
        "autoexport.exclude",
        "invalid type",
    ),
    (
        "autoexport",
        "metadata = \"always\"",
        "autoexport.metadata",
        "unknown variant `always`",
    ),
    (
        "autoexport",
        "on_delete = \"purge\"",
        "autoexport.on_delete",
        "unknown variant",
    ),
    (
        "autoexport",
        "on_rename = \"copy\"",
        "autoexport.on_rename",
        "unknown variant",
    ),
    (
        "autoexport",
        "conflict = \"ignore\"",
        "autoexport.conflict",
        "unknown variant",
    ),
    (
        "autoexport",
        "batch_size = 0",
        "autoexport.batch_size",
        "between 1 and 100000",
    ),
    (
        "autoexport",
        "queue_target = \"1h\"",
        "autoexport.queue_target",
        "must be at most 10min, got 3600 s",
    ),
    (
        "autoexport",
        "queue_target = 1",
        "autoexport.queue_target",
        "invalid type",
    ),
    (
        "autoexport",
        "min_in_flight = 0",
        "autoexport.min_in_flight",
        "between 1 and 1000000",
    ),
    (
        "autoexport",
        "enabled = \"yes\"",
        "autoexport.enabled",
        "invalid type",
    ),
    (
        "autoexport",
        "colour = \"red\"",
        "autoexport.colour",
        "unknown field `colour`",
    ),
    (
        "lustre",
        "archive_id = 0",
        "lustre.archive_id",
        "between 1 and",
    ),
    (
        "lustre",
        "archive_id = -3",
        "lustre.archive_id",
        "between 1 and",
    ),
    (
        "lustre",
        "archive_id = 4294967296",
        "lustre.archive_id",
        "between 1 and",
    ),
    (
        "lustre",
        "changelog_user = \"bob\"",
        "lustre.changelog_user",
        "invalid changelog user",
    ),
    (
        "lustre",
        "changelog_user = \"cl1-9bad\"",
        "lustre.changelog_user",
        "invalid changelog user",
    ),
    (
        "lustre",
        "changelog_user = \"cl\"",
        "lustre.changelog_user",
        "invalid changelog user",
    ),
    ("lustre", "mdts = []", "lustre.mdts", "at least one"),
    (
        "lustre",
        "mdts = [\"MDT0\"]",
        "lustre.mdts",
        "invalid MDT name",
    ),
    ("blob", "retries = -1", "blob.retries", "invalid value"),
    (
        "blob",
        "request_timeout = \"0s\"",
        "blob.request_timeout",
        "longer than 0s",
    ),
    (
        "logging",
        "container = \"Bad_Name\"",
        "logging.container",
        "invalid container name",
    ),
    (
        "logging",
        "container = \"ab\"",
        "logging.container",
        "invalid container name",
    ),
    (
        "logging",
        "container = \"a--b\"",
        "logging.container",
        "invalid container name",
    ),
    (
        "copytool",
        "block_size = \"8 parsecs\"",
        "copytool.block_size",
        "invalid size \"8 parsecs\"",
    ),
    (
        "copytool",
        "block_size = \"1KiB\"",
        "copytool.block_size",
        "outside Azure's block size limits",
    ),
    (
        "copytool",
        "block_size = \"4001MiB\"",
        "copytool.block_size",
        "outside Azure's block size limits",
    ),
    (
        "copytool",
        "block_size = -5",
        "copytool.block_size",
        "negative",
    ),
    (
        "copytool",
        "max_actions = 0",
        "copytool.max_actions",
        "between 1 and 1024",
    ),
    (
        "copytool",
        "blocks_in_flight = 1000",
        "copytool.blocks_in_flight",
        "between 1 and 256",
    ),
    (
        "copytool",
        "update_interval = \"0s\"",
        "copytool.update_interval",
        "longer than 0s",
    ),
    (
        "copytool",
        "bandwidth = \"0B\"",
        "copytool.bandwidth",
        "more than 0",
    ),
    (
        "control",
        "socket = \"relative.sock\"",
        "control.socket",
        "absolute",
    ),
    (
        "control",
        "state_dir = \"state\"",
        "control.state_dir",
        "absolute",
    ),
    (
        "control",
        "metrics = \"localhost\"",
        "control.metrics",
        "invalid listen address",
    ),
    (
        "copytool",
        "metrics = \"9465\"",
        "copytool.metrics",
        "invalid listen address",
    ),
];

#[test]
fn every_refusal_names_file_line_and_key() {
    for (section, line, key, fragment) in REFUSALS {
        let text = with(section, line);
        let bad_line = text.lines().position(|l| l == *line).unwrap() + 1;
        let e = refuse(&text);
        let shown = e.to_string();
        assert_eq!(e.key(), *key, "{shown}");
        assert_eq!(e.line(), Some(bad_line), "{shown}");
        assert!(
            shown.starts_with(&format!("policy.toml:{bad_line}: {key}: ")),
            "{shown}"
        );
        assert!(shown.contains(fragment), "{shown} lacks {fragment}");
        assert!(!shown.contains('\n'), "not one line: {shown}");
    }
}

#[test]
fn the_briefs_example_message_is_exact_up_to_the_hint() {
    let text = format!("{MIN}\n[autoexport]\nmin_age = \"5 parsecs\"\n");
    let shown = refuse(&text).to_string();
    assert!(
        shown.starts_with("policy.toml:7: autoexport.min_age: invalid duration \"5 parsecs\""),
        "{shown}"
    );
}

#[test]
fn bad_mount_and_url_are_refused() {
    let e = refuse("[lustre]\nmount = \"mnt\"\n[blob]\nurl = \"https://a/c\"\n");
    assert_eq!((e.key(), e.line()), ("lustre.mount", Some(2)));
    let e = refuse("[lustre]\nmount = \"/mnt\"\n[blob]\nurl = \"ftp://a/c\"\n");
    assert_eq!((e.key(), e.line()), ("blob.url", Some(4)));
    assert!(e.to_string().contains("invalid blob URL"));
    let e = refuse("[lustre]\nmount = \"/mnt\"\n[blob]\nurl = \"https://a/c d\"\n");
    assert_eq!(e.key(), "blob.url");
}

#[test]
fn missing_required_keys_are_named() {
    let e = refuse("[lustre]\n[blob]\nurl = \"https://a/c\"\n");
    assert_eq!(e.key(), "lustre.mount");
    assert!(e.to_string().contains("missing field `mount`"), "{e}");
    assert!(e.line().is_some());
    let e = refuse("[lustre]\nmount = \"/m\"\n[blob]\n");
    assert_eq!(e.key(), "blob.url");
    let e = refuse("[lustre]\nmount = \"/m\"\n");
    assert_eq!(e.key(), "blob");
    let e = refuse("");
    assert_eq!(e.key(), "lustre");
}

#[test]
fn unknown_sections_and_syntax_errors_are_refused_with_a_line() {
    let e = refuse(&format!("{MIN}[extra]\nx = 1\n"));
    assert_eq!(e.key(), "extra");
    assert!(e.to_string().contains("unknown field `extra`"));
    assert_eq!(e.line(), Some(5));
    let e = refuse(&format!("{MIN}[autoexport\nmin_age = \"1s\"\n"));
    assert_eq!(e.line(), Some(5));
    assert_eq!(e.key(), "");
    assert!(e.to_string().starts_with("policy.toml:5: "), "{e}");
}

#[test]
fn load_reads_a_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, MIN).unwrap();
    assert_eq!(
        Policy::load(&path).unwrap().lustre.mount,
        PathBuf::from("/mnt/lustre")
    );
    std::fs::write(&path, format!("{MIN}[copytool]\nmax_actions = 0\n")).unwrap();
    let e = Policy::load(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:6: copytool.max_actions: ", path.display())),
        "{e}"
    );
    let missing = dir.path().join("none.toml");
    let e = Policy::load(&missing).unwrap_err();
    assert!(
        matches!(&e, ConfigError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    );
    assert!(e.to_string().starts_with(&missing.display().to_string()));
}

#[test]
fn debug_output_hides_a_sas_in_the_url() {
    let p = parse("[lustre]\nmount = \"/m\"\n[blob]\nurl = \"https://a.blob.core.windows.net/c?sv=1&sig=SECRET\"\n").unwrap();
    let shown = format!("{:?}", p);
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("<redacted>"));
}

#[test]
fn changelog_user_forms() {
    for ok in ["cl1", "cl42", "cl3-name", "cl3-a_b-c"] {
        assert!(fields::check_changelog_user(ok).is_ok(), "{ok}");
    }
    for bad in ["cl", "c1", "cl-x", "clx", "cl1-", "cl1-abcdefghijklmnop"] {
        assert!(fields::check_changelog_user(bad).is_err(), "{bad}");
    }
}

#[test]
fn credential_files_open_to_group_or_others_are_refused_unless_allowed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    for key in [
        "account_key_file",
        "sas_token_file",
        "connection_string_file",
    ] {
        let secret = dir.path().join(format!("{key}.secret"));
        std::fs::write(&secret, "SECRET-VALUE-7f3e").unwrap();
        let text = with(
            "blob",
            &format!("{key} = {:?}", secret.display().to_string()),
        );
        std::fs::write(&policy, &text).unwrap();
        for (mode, who) in [
            (0o640, "its group"),
            (0o604, "others"),
            (0o644, "its group and others"),
        ] {
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = Policy::load(&policy).unwrap_err();
            let line = e.to_string();
            assert_eq!(e.key(), format!("blob.{key}"), "{line}");
            assert_eq!(line.lines().count(), 1, "{line}");
            assert!(line.contains(&secret.display().to_string()), "{line}");
            assert!(
                line.contains(&format!("open to {who} (mode {mode:04o})")),
                "{line}"
            );
            assert!(line.contains("chmod 600"), "{line}");
            assert!(!line.contains("SECRET-VALUE"), "secret leaked: {line}");
        }
        // 0600 and 0400 are fine.
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
            Policy::load(&policy).unwrap();
        }
        // Allowed by policy: loaded, with one warning naming the key.
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let allowed = with(
            "blob",
            &format!(
                "{key} = {:?}\nallow_shared_credentials_file = true",
                secret.display().to_string()
            ),
        );
        std::fs::write(&policy, &allowed).unwrap();
        let p = Policy::load(&policy).unwrap();
        let warnings = p.check_credential_files(&policy).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(&format!("blob.{key}: ")),
            "{warnings:?}"
        );
    }
    // A missing file is left to the reader, which names it.
    let text = with("blob", "account_key_file = \"/nonexistent/key\"");
    std::fs::write(&policy, &text).unwrap();
    Policy::load(&policy).unwrap();
}

#[test]
fn blob_url_hosts_are_found_in_every_form() {
    for (url, want) in [
        (
            "https://acct.blob.core.windows.net/c/p",
            Some(("acct.blob.core.windows.net", 443)),
        ),
        (
            "http://127.0.0.1:10000/devstoreaccount1/c",
            Some(("127.0.0.1", 10000)),
        ),
        (
            "http://[::1]:10000/devstoreaccount1/c",
            Some(("::1", 10000)),
        ),
        (
            "https://acct.blob.core.windows.net/c?sv=1&sig=x",
            Some(("acct.blob.core.windows.net", 443)),
        ),
        ("http://h.invalid", Some(("h.invalid", 80))),
        ("az://container/prefix", None),
        // WHATWG URL parsing (the `url` crate, as a browser does) skips the extra `/`.
        ("https:///c", Some(("c", 443))),
        ("https://", None),
        ("http://h:notaport/c", None),
    ] {
        let got = url_host_and_port(url);
        assert_eq!(got.as_ref().map(|(h, p)| (h.as_str(), *p)), want, "{url}");
    }
}

#[test]
fn a_blob_host_that_does_not_resolve_is_named_with_its_key() {
    // `.invalid` never resolves (RFC 6761): no query leaves the machine for it.
    let p =
        parse("[lustre]\nmount = \"/m\"\n[blob]\nurl = \"https://typo-acct.invalid/c\"\n").unwrap();
    let e = p.check_blob_host(Path::new("policy.toml")).unwrap_err();
    assert_eq!(e.key(), "blob.url");
    let line = e.to_string();
    assert!(
        line.starts_with("policy.toml: blob.url: host \"typo-acct.invalid\""),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1);
    let ok = parse(
        "[lustre]\nmount = \"/m\"\n[blob]\nurl = \"http://127.0.0.1:10000/devstoreaccount1/c\"\n",
    )
    .unwrap();
    ok.check_blob_host(Path::new("policy.toml")).unwrap();
    let az = parse("[lustre]\nmount = \"/m\"\n[blob]\nurl = \"az://c\"\n").unwrap();
    az.check_blob_host(Path::new("policy.toml")).unwrap();
}

#[test]
fn changelog_user_is_one_id_for_all_mdts_or_a_table_per_mdt() {
    let base = "[lustre]\nmount = \"/mnt/lustre\"\n";
    let tail = "[blob]\nurl = \"https://acct.blob.core.windows.net/c\"\n";
    let p = Policy::from_toml(
        &format!("{base}changelog_user = \"cl2\"\n{tail}"),
        Path::new("p.toml"),
    )
    .unwrap();
    assert_eq!(
        p.lustre.changelog_user.for_mdt("lustre-MDT0001"),
        Some("cl2")
    );
    let p = Policy::from_toml(
        &format!(
            "{base}changelog_user = {{ \"MDT0000\" = \"cl2\", \"lustre-MDT0001\" = \"cl1-blob\" }}\n{tail}"
        ),
        Path::new("p.toml"),
    )
    .unwrap();
    let u = &p.lustre.changelog_user;
    assert_eq!(u.for_mdt("lustre-MDT0000"), Some("cl2"));
    assert_eq!(u.for_mdt("lustre-MDT0001"), Some("cl1-blob"));
    assert_eq!(u.for_mdt("lustre-MDT0002"), None);
    for bad in [
        "changelog_user = { \"MDT0000\" = \"bob\" }",
        "changelog_user = { \"OST0000\" = \"cl1\" }",
        "changelog_user = {}",
        "changelog_user = 3",
    ] {
        let e = Policy::from_toml(&format!("{base}{bad}\n{tail}"), Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lustre.changelog_user"), "{bad}: {e}");
    }
}
