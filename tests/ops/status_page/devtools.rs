//! Headless Chromium driven over the DevTools protocol, through `--remote-debugging-pipe`
//! (JSON messages ended by a NUL byte, read on fd 3 and written on fd 4): one page kept open
//! while the test watches it, every network request it makes recorded. No WebSocket, no driver
//! binary: a pipe pair is all the protocol needs.

use super::browser::{await_quit, OpenPage};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

pub struct Page {
    child: Child,
    to_browser: std::io::PipeWriter,
    from_browser: Receiver<Value>,
    session: String,
    next_id: u64,
    /// Every event the page's session reported, in order.
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

impl Page {
    /// Starts Chromium and opens `url` in a new page, with the network watched from before the
    /// first request.
    pub fn open(chromium: &Path, url: &str) -> Page {
        let profile = tempfile::tempdir().unwrap();
        let (cmd_read, cmd_write) = std::io::pipe().unwrap();
        let (ev_read, ev_write) = std::io::pipe().unwrap();
        let (r, w) = (cmd_read.as_raw_fd(), ev_write.as_raw_fd());
        let mut command = Command::new(chromium);
        command
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec. The pipe
        // ends are first moved above 10 so that putting one on 3 cannot close the other.
        unsafe {
            command.pre_exec(move || {
                let r = libc::fcntl(r, libc::F_DUPFD_CLOEXEC, 10);
                let w = libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 10);
                if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start chromium");
        drop((cmd_read, ev_write));
        let (tx, from_browser) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(ev_read);
            let mut buf = Vec::new();
            while reader.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                buf.pop();
                if let Ok(v) = serde_json::from_slice(&buf) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        let mut page = Page {
            child,
            to_browser: cmd_write,
            from_browser,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
            _profile: profile,
        };
        let target = page.call("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().unwrap().to_string();
        let attached = page.call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        page.session = attached["sessionId"].as_str().unwrap().to_string();
        page.call("Network.enable", json!({}));
        page.call("Log.enable", json!({}));
        page.call("Page.navigate", json!({"url": url}));
        page
    }

    /// Sends one command (to the page once attached) and waits for its answer, keeping the
    /// events that arrive meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .expect("write to chromium");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from_browser
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("chromium did not answer {method} in 30 s"));
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("chromium refused {method}: {e}");
                }
                return v["result"].clone();
            }
            if v.get("method").is_some() && v["sessionId"] == self.session.as_str() {
                self.events.push(v);
            }
        }
    }

    /// The URL of every request the page has made so far, in order.
    pub fn requests(&mut self) -> Vec<String> {
        self.eval("0"); // collects the events that came in since the last call
        self.events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .map(|e| e["params"]["request"]["url"].as_str().unwrap().to_string())
            .collect()
    }

    /// What the browser logged about security (a Content-Security-Policy violation: something
    /// the page tried and the browser stopped).
    pub fn security_log(&self) -> Vec<Value> {
        self.events
            .iter()
            .filter(|e| {
                e["method"] == "Log.entryAdded" && e["params"]["entry"]["source"] == "security"
            })
            .cloned()
            .collect()
    }
}

impl OpenPage for Page {
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }
}

impl Drop for Page {
    /// Asks the browser to close (its helper processes go with it), killing it if it has not
    /// within 5 s.
    fn drop(&mut self) {
        let close = json!({"id": u64::MAX, "method": "Browser.close"});
        let mut bytes = serde_json::to_vec(&close).unwrap_or_default();
        bytes.push(0);
        let _ = self.to_browser.write_all(&bytes);
        await_quit(&mut self.child);
    }
}
