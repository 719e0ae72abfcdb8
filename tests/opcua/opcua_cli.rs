//! `mes-edge opcua endpoints|browse|read|trust` against an independent server (Python asyncua),
//! run as a commissioning engineer runs them.

use crate::common;

use common::opcua::{node, OpcUaOptions, OpcUaPeer, NS};
use std::path::Path;
use std::process::{Command, Output};

fn mes_edge(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mes-edge"))
        .arg("opcua")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn endpoints_browse_and_read_show_what_a_config_needs() {
    let mut peer = OpcUaPeer::start(OpcUaOptions {
        security: "all",
        ..Default::default()
    });
    peer.set("GoodCount", 1234);
    peer.set("OrderNumber", "ORD-77");
    let dir = tempfile::tempdir().unwrap();
    let ep = peer.endpoint();

    let out = mes_edge(dir.path(), &["endpoints", &ep]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for security in [
        "None/None",
        "Basic256Sha256/Sign ",
        "Basic256Sha256/SignAndEncrypt",
        "Aes128_Sha256_RsaOaep/SignAndEncrypt",
        "Aes256_Sha256_RsaPss/Sign ",
        "Aes256_Sha256_RsaPss/SignAndEncrypt",
    ] {
        assert!(text.contains(security), "{security} missing in\n{text}");
    }
    assert!(text.contains("users: Anonymous, UserName"), "{text}");

    let out = mes_edge(dir.path(), &["browse", &ep]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("nsu={NS};s=Press "))
                && l.contains("2:Press")
                && l.contains("Object")),
        "{text}"
    );

    let out = mes_edge(dir.path(), &["browse", &ep, &format!("nsu={NS};s=Press")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{} ", node(name))))
            .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line("GoodCount"),
        format!("{} 2:GoodCount Variable UInt32 (u32)", node("GoodCount"))
    );
    assert_eq!(
        line("Temperature"),
        format!(
            "{} 2:Temperature Variable Double (f64)",
            node("Temperature")
        )
    );
    assert_eq!(
        line("StartOrder"),
        format!("{} 2:StartOrder Method -", node("StartOrder"))
    );

    // By index, as a PLC manual would give it; the answer shows the stable nsu= form.
    let out = mes_edge(dir.path(), &["read", &ep, "ns=2;s=Press.GoodCount"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("node:        {}", node("GoodCount"))),
        "{text}"
    );
    assert!(text.contains("data type:   UInt32 (u32)"), "{text}");
    assert!(text.contains("value:       1234 (UInt32)"), "{text}");
    assert!(text.contains("status:      Good (Good)"), "{text}");
    assert!(text.contains("source time: 20"), "{text}");

    let out = mes_edge(dir.path(), &["read", &ep, &node("OrderNumber")]);
    assert!(
        stdout(&out).contains("value:       \"ORD-77\" (String)"),
        "{}",
        stdout(&out)
    );

    let out = mes_edge(dir.path(), &["read", &ep, "ns=2;s=Press.NoSuchNode"]);
    assert!(
        stdout(&out).contains("BadNodeIdUnknown"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    let out = mes_edge(dir.path(), &["read", &ep, "ns=2;x=1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("expected a node id like"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn trust_then_read_over_a_secure_endpoint_with_user_and_password() {
    let peer = OpcUaPeer::start(OpcUaOptions {
        security: "secure",
        user: Some(("operator".into(), "pw-1".into())),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "pw-1\n").unwrap();
    std::fs::write(dir.path().join("wrong"), "pw-2\n").unwrap();
    let ep = peer.endpoint();
    let secure = |extra: &[&str]| {
        let mut a = vec![
            "read",
            &ep,
            "nsu=urn:mes-edge:test-plc;s=Press.State",
            "--security-policy",
            "Aes256_Sha256_RsaPss",
            "--username",
            "operator",
            "--pki-dir",
            "pki",
        ];
        a.extend_from_slice(extra);
        mes_edge(dir.path(), &a)
    };

    let out = secure(&["--password-file", "pw"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the server's certificate is not trusted")
            && stderr(&out).contains("move \"pki/rejected/"),
        "{}",
        stderr(&out)
    );

    let out = mes_edge(
        dir.path(),
        &["trust", &ep, "--pki-dir", "pki", "--thumbprint", "0011"],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a thumbprint that does not match trusts nothing"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("pki/trusted"))
            .unwrap()
            .count(),
        0
    );

    let out = mes_edge(dir.path(), &["endpoints", &ep, "--pki-dir", "pki"]);
    let thumbprint = stdout(&out)
        .lines()
        .next()
        .and_then(|l| l.rsplit("certificate: ").next())
        .unwrap()
        .to_string();
    let out = mes_edge(
        dir.path(),
        &[
            "trust",
            &ep,
            "--pki-dir",
            "pki",
            "--thumbprint",
            &thumbprint,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("thumbprint:  {thumbprint}")));
    assert!(
        std::fs::read_dir(dir.path().join("pki/rejected"))
            .unwrap()
            .count()
            == 0,
        "trusting moves it out of rejected/"
    );

    let out = secure(&["--password-file", "wrong"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the server refused the user identity"),
        "{}",
        stderr(&out)
    );

    let out = secure(&["--password-file", "pw"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("value:       0 (UInt16)"),
        "{}",
        stdout(&out)
    );
    // Every policy we offer, in both modes.
    for policy in [
        "Basic256Sha256",
        "Aes128_Sha256_RsaOaep",
        "Aes256_Sha256_RsaPss",
    ] {
        for mode in ["Sign", "SignAndEncrypt"] {
            let out = mes_edge(
                dir.path(),
                &[
                    "read",
                    &ep,
                    &node("State"),
                    "--security-policy",
                    policy,
                    "--security-mode",
                    mode,
                    "--username",
                    "operator",
                    "--password-file",
                    "pw",
                    "--pki-dir",
                    "pki",
                ],
            );
            assert!(out.status.success(), "{policy}/{mode}: {}", stderr(&out));
        }
    }
}

#[test]
fn an_x509_user_identity_is_accepted_and_another_refused() {
    let peer = OpcUaPeer::start(OpcUaOptions {
        security: "secure",
        user: Some(("operator".into(), "pw-1".into())),
        x509_user: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ep = peer.endpoint();
    let out = mes_edge(dir.path(), &["trust", &ep, "--pki-dir", "pki"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (cert, key) = peer.user_certificate();
    let read = |cert: &Path, key: &Path| {
        mes_edge(
            dir.path(),
            &[
                "read",
                &ep,
                &node("GoodCount"),
                "--security-policy",
                "Basic256Sha256",
                "--security-mode",
                "Sign",
                "--pki-dir",
                "pki",
                "--user-cert",
                cert.to_str().unwrap(),
                "--user-key",
                key.to_str().unwrap(),
            ],
        )
    };
    let out = read(&cert, &key);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("value:       0 (UInt32)"),
        "{}",
        stdout(&out)
    );

    // Our own application certificate is a valid certificate, but not the user's.
    let pki = dir.path().join("pki");
    let out = read(&pki.join("own/cert.der"), &pki.join("private/private.pem"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the server refused the user identity"),
        "{}",
        stderr(&out)
    );
}
