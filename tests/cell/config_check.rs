//! Config files against `mes-edge check`, the way a controls engineer runs it: every example in
//! config/ passes, and every case in tests/config-cases/ fails with exactly its expected error
//! (file:line:column and what was expected) and a non-zero exit.

use std::path::Path;
use std::process::Command;

fn check(dir: &Path, file: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mes-edge"))
        .arg("check")
        .arg(file)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn entries(dir: &str) -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn every_example_config_passes_check() {
    let configs: Vec<_> = entries("config")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    assert!(configs.len() >= 2, "expected example configs in config/");
    for path in configs {
        let out = check(
            path.parent().unwrap(),
            path.file_name().unwrap().to_str().unwrap(),
        );
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{}: ok", path.file_name().unwrap().to_str().unwrap())
        );
    }
}

#[test]
fn every_broken_config_gets_its_expected_error() {
    let cases = entries("tests/config-cases");
    assert!(cases.len() >= 10, "expected the broken-config cases");
    for case in cases {
        let expected = std::fs::read_to_string(case.join("expected-error.txt")).unwrap();
        let out = check(&case, "cell.toml");
        assert_eq!(out.status.code(), Some(1), "{}", case.display());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            expected,
            "{}",
            case.display()
        );
    }
}

#[test]
fn the_demo_config_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let text = mes_edge::demo::config_text(1502, 1883, &dir.path().join("demo.db"));
    mes_edge::config::parse(Path::new("demo.toml"), &text).unwrap();
}

#[test]
fn run_refuses_a_broken_config_with_its_location() {
    let case =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config-cases/signal-names-unknown-tag");
    let out = Command::new(env!("CARGO_BIN_EXE_mes-edge"))
        .args(["run", "--config", "cell.toml"])
        .current_dir(&case)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cell.toml:20:7: unknown tag \"good_cnt\""),
        "{stderr}"
    );
    assert!(
        !case.join("cell.db").exists(),
        "nothing created for a config that does not check"
    );
}

#[test]
fn a_password_over_plaintext_mqtt_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let case = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config-cases/zero-poll-interval/cell.toml");
    let text = std::fs::read_to_string(case)
        .unwrap()
        .replace("poll_interval_ms = 0", "poll_interval_ms = 100")
        + "\nusername = \"press4\"\npassword_env = \"MQTT_PASSWORD\"\n";
    std::fs::write(dir.path().join("cell.toml"), &text).unwrap();
    let out = check(dir.path(), "cell.toml");
    assert!(out.status.success(), "a warning does not fail the check");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "cell.toml: ok\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "cell.toml:29:16: warning: a broker password over plaintext `mqtt://` can be read by anyone on the network path; use `mqtts://` with `ca_file`\n"
    );
    // Over TLS, no warning.
    std::fs::write(dir.path().join("ca.pem"), "").unwrap();
    std::fs::write(
        dir.path().join("cell.toml"),
        text.replace("mqtt://10.0.0.1", "mqtts://10.0.0.1") + "ca_file = \"ca.pem\"\n",
    )
    .unwrap();
    let out = check(dir.path(), "cell.toml");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// A config whose `[mqtt]` table is its last, with `extra` lines added to it.
fn config_with_mqtt(dir: &Path, extra: &str) -> std::path::PathBuf {
    let case = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config-cases/zero-poll-interval/cell.toml");
    let text = std::fs::read_to_string(case)
        .unwrap()
        .replace("poll_interval_ms = 0", "poll_interval_ms = 100")
        .replace("mqtt://10.0.0.1", "mqtts://10.0.0.1")
        + "\nca_file = \"ca.pem\"\n"
        + extra;
    let path = dir.join("cell.toml");
    std::fs::write(&path, text).unwrap();
    // There, so that `check` has nothing to say of it.
    std::fs::write(dir.join("ca.pem"), "").unwrap();
    path
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_password_others_can_read_is_a_warning_in_the_config_as_in_a_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_mqtt(dir.path(), "username = \"press4\"\npassword = \"s3cret\"\n");
    chmod(&config, 0o644);
    let out = check(dir.path(), "cell.toml");
    assert!(out.status.success(), "a warning does not fail the check");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("cell.toml:30:12: warning: the config file holding `password` is readable by every user of this computer (mode 644): cell.toml; chmod 640 it with the service's group, or move the password to `password_file` or `password_env`\n")
    );
    // Readable by its group only: as the package installs configs, no warning.
    chmod(&config, 0o640);
    let out = check(dir.path(), "cell.toml");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");

    // The same logic, the same words, for a password file.
    let config = config_with_mqtt(
        dir.path(),
        "username = \"press4\"\npassword_file = \"press4.password\"\n",
    );
    chmod(&config, 0o644);
    let secret = dir.path().join("press4.password");
    std::fs::write(&secret, "s3cret\n").unwrap();
    chmod(&secret, 0o644);
    let out = check(dir.path(), "cell.toml");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "cell.toml:30:17: warning: password_file is readable by every user of this computer (mode 644): press4.password; chmod 600 it (or 640 with the service's group)\n"
    );
    chmod(&secret, 0o600);
    assert_eq!(
        String::from_utf8_lossy(&check(dir.path(), "cell.toml").stderr),
        ""
    );
}

#[test]
fn a_user_name_over_opcua_policy_none_is_a_warning_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let case = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config-cases/opcua-credentials-without-security-policy/cell.toml");
    let text = std::fs::read_to_string(case).unwrap().replace(
        "username = \"mes\"",
        "security_policy = \"None\"\nusername = \"mes\"",
    );
    // The robot's user certificate over Basic256Sha256: no warning for it.
    let text = text.replace(
        "user_cert_file",
        "security_policy = \"Basic256Sha256\"\nuser_cert_file",
    );
    std::fs::write(dir.path().join("cell.toml"), text).unwrap();
    let out = check(dir.path(), "cell.toml");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "cell.toml:12:19: warning: a user name and password over security policy None: the session is neither signed nor encrypted, and the password is protected only if the server's user token policy encrypts it; use Basic256Sha256 or stronger\n"
    );
}

#[test]
fn a_status_page_open_to_the_network_without_a_token_is_a_warning_naming_the_line() {
    // The runtime starts that way, its page and API refusing every request (403): check says
    // so before the engineer finds out from a browser, and does not refuse the file.
    let dir = tempfile::tempdir().unwrap();
    config_with_mqtt(dir.path(), "\n[health]\nlisten = \"0.0.0.0:9464\"\n");
    let out = check(dir.path(), "cell.toml");
    assert!(out.status.success(), "a warning does not fail the check");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "cell.toml: ok\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "cell.toml:31:10: warning: not a loopback address and no `token_file`: the status page and /api/v1 will refuse every request (403), /health and /metrics stay open; set `token_file` (docs/STATUS-PAGE.md)\n"
    );
    // With a token file, on loopback, or with the listener off: nothing to say.
    for health in [
        "listen = \"0.0.0.0:9464\"\ntoken_file = \"page-token\"",
        "listen = \"127.0.0.1:9464\"",
        "listen = \"[::1]:9464\"",
        "enabled = false\nlisten = \"0.0.0.0:9464\"",
    ] {
        config_with_mqtt(dir.path(), &format!("\n[health]\n{health}\n"));
        let out = check(dir.path(), "cell.toml");
        assert!(out.status.success(), "{health}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{health}");
    }
}

#[test]
fn a_broker_file_that_is_not_there_is_a_warning_naming_the_entry() {
    // A warning, not an error: `check` also runs where the config is written, away from the
    // PC whose /etc holds the files; `run` stops on it, naming the broker and the file.
    let dir = tempfile::tempdir().unwrap();
    config_with_mqtt(
        dir.path(),
        "username = \"press4\"\npassword_env = \"MQTT_PASSWORD\"\n",
    );
    let text = std::fs::read_to_string(dir.path().join("cell.toml"))
        .unwrap()
        .replace(
            "url = \"mqtts://10.0.0.1\"",
            "urls = [\"mqtts://10.0.0.1\", { url = \"mqtts://10.0.0.2\", password_file = \"press4-b.password\" }]",
        );
    std::fs::write(dir.path().join("cell.toml"), text).unwrap();
    let out = check(dir.path(), "cell.toml");
    assert!(out.status.success(), "a warning does not fail the check");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "cell.toml: ok\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "cell.toml:27:73: warning: password_file press4-b.password is not there: the cell cannot connect to the broker until it is\n"
    );
    let secret = dir.path().join("press4-b.password");
    std::fs::write(&secret, "s3cret-b\n").unwrap();
    chmod(&secret, 0o600);
    assert_eq!(
        String::from_utf8_lossy(&check(dir.path(), "cell.toml").stderr),
        ""
    );
}
