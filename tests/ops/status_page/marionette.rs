//! Headless Firefox driven over Marionette, the protocol geckodriver itself speaks to Firefox:
//! on a TCP port, each message `<length>:<JSON>`, a command `[0, id, name, params]` and its
//! answer `[1, id, error, result]`. WebDriver's commands by their Marionette names; no driver
//! binary between the test and the browser.

use super::browser::{await_quit, OpenPage};
use base64::Engine;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Firefox {
    child: Child,
    to_browser: TcpStream,
    from_browser: BufReader<TcpStream>,
    next_id: u64,
    profile: tempfile::TempDir,
}

/// Its own profile: Marionette on a free port (written to the profile's MarionetteActivePort),
/// none of a first start's questions, no calls to Mozilla's services.
const USER_JS: &str = r#"
user_pref("marionette.port", 0);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.update.disabledForTesting", true);
user_pref("app.normandy.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("browser.safebrowsing.update.enabled", false);
user_pref("extensions.update.enabled", false);
"#;

impl Firefox {
    /// Starts Firefox and opens `url` in it.
    pub fn open(firefox: &Path, url: &str) -> Firefox {
        let profile = tempfile::tempdir().unwrap();
        std::fs::write(profile.path().join("user.js"), USER_JS).unwrap();
        let log = profile.path().join("firefox.log");
        let mut child = Command::new(firefox)
            .args(["--headless", "--marionette", "--no-remote", "--profile"])
            .arg(profile.path())
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start firefox");
        let port_file = profile.path().join("MarionetteActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let port: u16 = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                break p;
            }
            let ended = child.try_wait().unwrap();
            if ended.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "firefox never listened for Marionette ({ended:?}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut ff = Firefox {
            child,
            to_browser: stream.try_clone().unwrap(),
            from_browser: BufReader::new(stream),
            next_id: 0,
            profile,
        };
        let hello = ff.read();
        assert_eq!(hello["marionetteProtocol"], 3, "{hello}");
        ff.call("WebDriver:NewSession", json!({"capabilities": {}}));
        ff.call("WebDriver:Navigate", json!({"url": url}));
        ff
    }

    fn read(&mut self) -> Value {
        let mut len = Vec::new();
        self.from_browser
            .read_until(b':', &mut len)
            .expect("read from firefox");
        len.pop();
        let len: usize = std::str::from_utf8(&len).unwrap().parse().unwrap();
        let mut body = vec![0; len];
        self.from_browser
            .read_exact(&mut body)
            .expect("read from firefox");
        serde_json::from_slice(&body).unwrap()
    }

    /// Sends one command and waits for its answer.
    fn call(&mut self, command: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = serde_json::to_vec(&json!([0, id, command, params])).unwrap();
        write!(self.to_browser, "{}:", msg.len()).unwrap();
        self.to_browser.write_all(&msg).expect("write to firefox");
        loop {
            let v = self.read();
            if v[1] == id {
                assert!(v[2].is_null(), "firefox refused {command}: {}", v[2]);
                return v[3].clone();
            }
        }
    }

    /// A screenshot of the page at `width`×`height`, written to `file` (PNG).
    pub fn screenshot(&mut self, file: &Path, width: u32, height: u32) -> PathBuf {
        self.call(
            "WebDriver:SetWindowRect",
            json!({"width": width, "height": height}),
        );
        let png = self.call("WebDriver:TakeScreenshot", json!({"full": false}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(png["value"].as_str().unwrap())
            .unwrap();
        std::fs::write(file, &png).unwrap();
        file.to_path_buf()
    }

    /// What Firefox wrote to stderr so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("firefox.log")).unwrap_or_default()
    }
}

impl OpenPage for Firefox {
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "WebDriver:ExecuteScript",
            json!({"script": format!("return {expression};"), "args": []}),
        );
        r["value"].clone()
    }
}

impl Drop for Firefox {
    /// Asks Firefox to quit (its content processes go with it), killing it if it has not
    /// within 5 s.
    fn drop(&mut self) {
        let msg = serde_json::to_vec(&json!([0, u64::MAX, "Marionette:Quit", {}])).unwrap();
        let _ = write!(self.to_browser, "{}:", msg.len());
        let _ = self.to_browser.write_all(&msg);
        await_quit(&mut self.child);
    }
}
