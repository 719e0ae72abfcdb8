//! Secrets that others on the computer can read: a password file, a private key, or the config
//! file itself when it holds `password`. Warnings, not problems: the file's mode is the
//! administrator's to fix, and the cell must not stop for it.

use crate::config::{CellConfig, Problem, Seg};
use std::path::Path;

/// The mode of `path` if every user of the computer may read it. The file's group is left
/// out: the packaged configs are 0640 with the service's own group (docs/OPERATIONS.md).
pub fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o004 != 0).then_some(mode)
}

fn warning(at: Vec<Seg>, what: &str, path: &Path, mode: u32, fix: &str) -> Problem {
    Problem::at(
        at,
        format!(
            "warning: {what} is readable by every user of this computer (mode {mode:o}): {}; {fix}",
            path.display()
        ),
    )
}

/// Each secret file and the config file holding an inline `password`, if others can read it.
pub fn warnings(c: &CellConfig, config_file: &Path, w: &mut Vec<Problem>) {
    let chmod = "chmod 600 it (or 640 with the service's group)";
    let m = &c.mqtt;
    let mut files: Vec<(Vec<Seg>, &str, &Path)> = Vec::new();
    let brokers = super::brokers::written(m);
    for (at, a) in &brokers {
        for (key, file) in [
            ("password_file", &a.password_file),
            ("key_file", &a.key_file),
        ] {
            if let Some(f) = file {
                let mut at = at.clone();
                at.push(key.into());
                files.push((at, key, f));
            }
        }
    }
    if let Some(f) = &c.health.token_file {
        files.push((path!["health", "token_file"], "token_file", f));
    }
    for (d, dev) in c.devices.iter().enumerate() {
        for (key, f) in crate::config::protocols::of(dev).secret_files(dev) {
            files.push((path!["devices", d, key], key, f));
        }
    }
    for (at, what, file) in files {
        if let Some(mode) = readable_by_others(file) {
            w.push(warning(at, what, file, mode, chmod));
        }
    }
    let inline = brokers
        .iter()
        .find(|(_, a)| a.password.is_some())
        .map(|(at, _)| [at.clone(), path!["password"]].concat());
    if let Some(at) = inline {
        if let Some(mode) = readable_by_others(config_file) {
            let fix = "chmod 640 it with the service's group, or move the password to `password_file` or `password_env`";
            w.push(warning(
                at,
                "the config file holding `password`",
                config_file,
                mode,
                fix,
            ));
        }
    }
}
