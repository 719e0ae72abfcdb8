//! [`Pki`]: certificates made by a test (rcgen) for a TLS Mosquitto and the cell, with a login
//! Mosquitto knows (mosquitto_passwd). Each PKI has a CA of its own, so two of them are two
//! brokers that trust different CAs and know different logins.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

/// A CA, the broker's certificate (for 127.0.0.1) and a client certificate, as PEM files.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The login the broker knows (mosquitto_passwd) and the cell's password file holds.
    pub user: String,
    pub password: String,
    pub ca: PathBuf,
    pub broker_cert: PathBuf,
    pub broker_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing here: a runtime trusting only it must refuse the broker.
    pub stranger_ca: PathBuf,
    pub password_file: PathBuf,
    /// Mosquitto's password file (hashed by mosquitto_passwd).
    pub broker_passwd: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    (p.self_signed(&key).unwrap(), key)
}

fn leaf(names: &[&str], cn: &str, ca: &rcgen::Certificate, ca_key: &KeyPair) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    (
        p.signed_by(&key, ca, ca_key).unwrap().pem(),
        key.serialize_pem(),
    )
}

impl Pki {
    /// A PKI of its own (CA named after `user`), and the login `user`/`password`.
    pub fn new(user: &str, password: &str) -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("mes-edge-pki-")
            .tempdir()
            .unwrap();
        // Mosquitto started as root drops to the `mosquitto` user: it must read its files.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let write = |name: &str, text: &str, mode: u32| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        };
        let (ca_cert, ca_key) = ca(&format!("mes-edge test plant CA ({user})"));
        let (broker_cert, broker_key) =
            leaf(&["127.0.0.1", "localhost"], "broker", &ca_cert, &ca_key);
        let (client_cert, client_key) = leaf(&[user], user, &ca_cert, &ca_key);
        let (stranger, _) = ca("someone else's CA");
        let broker_passwd = write("broker.passwd", "", 0o644);
        let out = Command::new("mosquitto_passwd")
            .args(["-b"])
            .arg(&broker_passwd)
            .args([user, password])
            .output()
            .expect("mosquitto_passwd (package mosquitto) not found: run scripts/test.sh");
        assert!(
            out.status.success(),
            "mosquitto_passwd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::set_permissions(&broker_passwd, std::fs::Permissions::from_mode(0o644)).unwrap();
        Pki {
            ca: write("ca.pem", &ca_cert.pem(), 0o644),
            broker_cert: write("broker.pem", &broker_cert, 0o644),
            broker_key: write("broker.key", &broker_key, 0o644),
            client_cert: write("client.pem", &client_cert, 0o644),
            client_key: write("client.key", &client_key, 0o600),
            stranger_ca: write("stranger-ca.pem", &stranger.pem(), 0o644),
            password_file: write("mqtt-password", &format!("{password}\n"), 0o600),
            broker_passwd,
            user: user.to_string(),
            password: password.to_string(),
            dir,
        }
    }

    /// Mosquitto's TLS settings for its first listener, then a plaintext listener on
    /// `plain_port` for MOM's collector. With `login`, nobody gets in without a password.
    pub fn broker_config(&self, plain_port: u16, login: bool) -> String {
        let mut c = format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\ntls_version tlsv1.2\n",
            self.ca.display(),
            self.broker_cert.display(),
            self.broker_key.display()
        );
        if login {
            c += &format!(
                "allow_anonymous false\npassword_file {}\n",
                self.broker_passwd.display()
            );
        }
        c += &format!("listener {plain_port} 127.0.0.1\n");
        c
    }
}
