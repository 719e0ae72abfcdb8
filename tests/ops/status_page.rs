//! The status page in real browsers (Debian's headless Chromium and Firefox ESR) against the
//! real binary, a pymodbus press and Mosquitto. What the page shows is checked against what the
//! independent peers made and received: the PLC's counters and the events an MQTT subscriber
//! got. Screenshots at 1024×768 and at a phone's size are kept in target/status-page/.

#[path = "status_page/browser.rs"]
mod browser;
use crate::common;
#[path = "status_page/devtools.rs"]
mod devtools;
#[path = "status_page/marionette.rs"]
mod marionette;

use browser::OpenPage;
use common::free_port;
use common::order_cell::{Cell, T};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "status-page-test-token-0123456789";
/// A holding register the lab press leaves free: the die temperature, tenths of a degree.
const DIE_TEMPERATURE: u16 = 30;

/// A browser: `$<var>` or Debian's at `/usr/bin/<package>`. Missing, the test fails saying what
/// to install.
fn browser(var: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new("/usr/bin").join(package));
    assert!(
        path.is_file(),
        "no browser at {}: apt-get install -y --no-install-recommends {package} \
         (scripts/test.sh installs it), or set {var}",
        path.display()
    );
    path
}

fn chromium() -> PathBuf {
    browser("MES_EDGE_CHROMIUM", "chromium")
}

fn firefox() -> PathBuf {
    browser("MES_EDGE_FIREFOX", "firefox-esr")
}

/// Runs headless Chromium on `url` with `args` (its own profile, so that tests running at once
/// do not share one) and returns its stdout.
fn browse(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut out = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish with {url} in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

fn dom(url: &str) -> String {
    browse(url, &["--dump-dom"])
}

/// The text of the element with `id` in a dumped DOM (its first text node).
fn text_of(dom: &str, id: &str) -> Option<String> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let rest = &dom[start..];
    let rest = &rest[rest.find('>')? + 1..];
    Some(rest[..rest.find('<')?].to_string())
}

/// Dumps the page until `check` accepts it, or fails with the last DOM after `within`.
async fn page_until(
    url: &str,
    within: Duration,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let u = url.to_string();
        let d = tokio::task::spawn_blocking(move || dom(&u)).await.unwrap();
        if check(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {what}:\n{d}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Where a test artefact named `name` goes (target/status-page/), none there yet.
fn artefact(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/status-page");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    let _ = std::fs::remove_file(&file);
    file
}

fn assert_screenshot(file: &Path) {
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    assert!(len > 10_000, "screenshot {} is {len} bytes", file.display());
}

fn screenshot(url: &str, name: &str, size: &str) -> PathBuf {
    let file = artefact(name);
    browse(
        url,
        &[
            &format!("--screenshot={}", file.display()),
            &format!("--window-size={size}"),
        ],
    );
    assert_screenshot(&file);
    file
}

/// One GET over a plain socket: (status code, body).
fn get(port: u16, target: &str, headers: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// The lab press with the page on `listen`, a published die temperature and, if `sparkplug`,
/// the cell as a Sparkplug B edge node too (on the same Mosquitto).
async fn cell_with_page(listen: &str, token_file: Option<&Path>, sparkplug: bool) -> Cell {
    let (listen, token_file) = (listen.to_string(), token_file.map(Path::to_path_buf));
    let c = Cell::start_edited(
        move |doc| {
            if sparkplug {
                doc["sparkplug"]["enabled"] = toml_edit::value(true);
            }
            let mut health = toml_edit::Table::new();
            health["listen"] = toml_edit::value(listen);
            if let Some(f) = token_file {
                health["token_file"] = toml_edit::value(f.display().to_string());
            }
            doc["health"] = toml_edit::Item::Table(health);
            // A process value, for the page's trends: published at any change.
            let mut tag = toml_edit::Table::new();
            tag["name"] = toml_edit::value("die_temperature");
            tag["table"] = toml_edit::value("holding");
            tag["address"] = toml_edit::value(DIE_TEMPERATURE as i64);
            tag["type"] = toml_edit::value("u16");
            tag["scale"] = toml_edit::value(0.1);
            tag["publish"] = toml_edit::value(true);
            doc["devices"][0]["tags"]
                .as_array_of_tables_mut()
                .expect("the lab press's tags")
                .push(tag);
        },
        "",
    )
    .await;
    let r = c
        .command(json!({"correlation_id": "p1", "command": "store_and_start",
            "order": {"id": "WO-P1", "material": "BRK-220", "quantity": 40, "ideal_cycle_s": 0.5, "lot": "L-9"}}))
        .await;
    assert_eq!(r["state"], "Running", "{r}");
    c
}

/// Of the addresses a browser recorded for an open page: at least `status_calls` were the API's
/// status (the page followed it as it went), and none was beyond the runtime at `origin`.
fn asked_only_the_runtime(requests: &[String], origin: &str, status_calls: usize) {
    let status = format!("{origin}/api/v1/status");
    let asked = requests.iter().filter(|u| u.starts_with(&status)).count();
    assert!(
        asked >= status_calls,
        "the page asked the API as it went: {requests:?}"
    );
    let elsewhere: Vec<_> = requests
        .iter()
        .filter(|u| !u.starts_with(&format!("{origin}/")))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "the page asked someone other than the runtime ({origin}): {elsewhere:?}"
    );
}

fn counts(dom: &str) -> (Option<String>, Option<String>) {
    (text_of(dom, "order-good"), text_of(dom, "order-scrap"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_what_mom_received_follows_the_press_and_sees_a_device_go() {
    let port = free_port();
    let mut c = cell_with_page(&format!("127.0.0.1:{port}"), None, false).await;
    let url = format!("http://127.0.0.1:{port}/");

    c.make(12, 2).await;
    let received = c.parts_of(json!("WO-P1"));
    assert_eq!(
        received,
        (12, 2),
        "the subscriber got every part the PLC made"
    );
    let want = (Some("12".to_string()), Some("2".to_string()));
    let d = page_until(&url, T, "12 good and 2 scrap", |d| counts(d) == want).await;
    assert_eq!(text_of(&d, "order-id").as_deref(), Some("WO-P1"));
    assert_eq!(text_of(&d, "state").as_deref(), Some("running"));
    assert!(
        d.contains(">good_count<"),
        "the live tags list the counter: {d}"
    );

    // The press goes on: the page follows what MOM receives.
    c.make(7, 1).await;
    let received = c.parts_of(json!("WO-P1"));
    assert_eq!(received, (19, 3));
    let want = (Some("19".to_string()), Some("3".to_string()));
    page_until(&url, T, "19 good and 3 scrap", |d| counts(d) == want).await;
    let (code, body) = get(port, "/api/v1/events?after=0&limit=500&type=part_count", "");
    assert_eq!(code, 200, "{body}");
    let events: Value = serde_json::from_str(&body).unwrap();
    let api_good: u64 = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["data"]["counter"] == "good")
        .map(|e| e["event"]["data"]["quantity"].as_u64().unwrap())
        .sum();
    assert_eq!(api_good, 19, "the API's events hold the parts MOM got");

    let u = url.clone();
    tokio::task::spawn_blocking(move || {
        screenshot(&u, "page-1024x768.png", "1024,768");
        screenshot(&u, "page-phone-390x844.png", "390,844");
    })
    .await
    .unwrap();

    // The PLC goes away: the page says so (the device's timeout, then its reconnect attempts).
    c.peer.stop();
    let d = page_until(
        &url,
        Duration::from_secs(40),
        "the press disconnected",
        |d| d.contains(">disconnected<"),
    )
    .await;
    assert!(
        d.contains("device plc is not connected"),
        "the problem is named at the top: {d}"
    );
    let (_, body) = get(port, "/api/v1/status", "");
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["devices"][0]["connected"], false, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_the_page_and_the_api_ask_for_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("page-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let port = free_port();
    let mut c = cell_with_page(&format!("0.0.0.0:{port}"), Some(&token_file), false).await;
    c.make(3, 0).await;

    for target in [
        "/",
        "/api/v1/status",
        "/api/v1/tags",
        "/api/v1/orders",
        "/api/v1/events",
    ] {
        let (code, body) = get(port, target, "");
        assert_eq!(code, 401, "{target} without the token: {body}");
        assert!(!body.contains("WO-P1"), "{target} told nothing: {body}");
        let (code, _) = get(
            port,
            &format!("{target}?token=wrong-token-0123456789abc"),
            "",
        );
        assert_eq!(code, 401, "{target} with a wrong token");
        let (code, body) = get(port, target, &format!("Authorization: Bearer {TOKEN}\r\n"));
        assert_eq!(code, 200, "{target} with the bearer token: {body}");
    }
    let (code, body) = get(port, &format!("/api/v1/status?token={TOKEN}"), "");
    assert_eq!(code, 200, "{body}");
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["order"]["good"], 3, "{s}");
    // Monitoring keeps its status code without a token.
    let (code, body) = get(port, "/health", "");
    assert!(code == 200 || code == 503, "{code} {body}");
    assert_eq!(get(port, "/metrics", "").0, 200);

    // The browser: refused without the token; with it in the address, the page keeps it for
    // every call it makes.
    let d = tokio::task::spawn_blocking(move || dom(&format!("http://127.0.0.1:{port}/")))
        .await
        .unwrap();
    assert!(
        d.contains("a token is required") && !d.contains("order-good"),
        "{d}"
    );
    let url = format!("http://127.0.0.1:{port}/?token={TOKEN}");
    let want = (Some("3".to_string()), Some("0".to_string()));
    let d = page_until(&url, T, "3 good with the token", |d| counts(d) == want).await;
    assert!(
        text_of(&d, "live").is_some_and(|t| t.starts_with("live")),
        "{d}"
    );
}

/// The README's first minute: `mes-edge demo` prints the page's address, and the page there
/// shows the simulated press making parts (docs/status-page.png is this test's screenshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_the_page_and_the_page_shows_the_press() {
    use std::io::BufRead;
    let mut demo = Command::new(env!("CARGO_BIN_EXE_mes-edge"))
        .args(["demo", "--duration", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(demo.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .take(20)
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_once("status page")
                .and_then(|(_, r)| r.split_whitespace().last().map(String::from))
        })
        .expect("the demo prints the status page's address");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // Keep reading, so that the demo never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).count());
    let d = page_until(
        &url,
        Duration::from_secs(25),
        "parts of the demo's order",
        |d| text_of(d, "order-good").is_some_and(|g| g.parse::<u64>().is_ok_and(|g| g >= 3)),
    )
    .await;
    assert!(d.contains(">die_temperature<"), "{d}");
    let u = url.clone();
    tokio::task::spawn_blocking(move || screenshot(&u, "demo-1024x768.png", "1024,768"))
        .await
        .unwrap();
    let _ = demo.kill();
    let _ = demo.wait();
    let _ = drain.join();
}

/// One page kept open over the DevTools protocol: it follows the press without a reload and
/// draws the trend of the die temperature the PLC served, every request it makes (recorded by
/// the browser, not by the runtime) goes to the runtime's own listener, it says plainly when
/// the runtime stops answering and comes back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_open_page_asks_only_the_runtime_follows_the_press_and_sees_it_stop() {
    use tokio::task::block_in_place;
    let port = free_port();
    let mut c = cell_with_page(&format!("127.0.0.1:{port}"), None, true).await;
    let host = common::mqtt::Collector::start(c.broker.port(), "spBv1.0/#").await;
    // The PLC serves die temperatures, each long enough for a point of the trend of its own
    // (two of its steps); the first is the register's 0 until the test writes.
    let served = [0.0, 21.5, 22.0, 23.5];
    let hold = Duration::from_millis(2 * mes_edge::ops::trend::STEP_MS as u64 + 500);
    c.plc.write_u16(DIE_TEMPERATURE, 215).await;
    let mut held_since = Instant::now();
    c.make(5, 1).await;
    let origin = format!("http://127.0.0.1:{port}");
    let mut page = block_in_place(|| devtools::Page::open(&chromium(), &format!("{origin}/")));
    let good = "(document.getElementById('order-good') || {}).textContent";
    block_in_place(|| page.until(good, T, "5 good", |v| v == "5"));

    c.make(4, 0).await;
    assert_eq!(
        c.parts_of(json!("WO-P1")),
        (9, 1),
        "the subscriber got them"
    );
    block_in_place(|| page.until(good, T, "9 good, without a reload", |v| v == "9"));
    // Seconds of the page updating itself while the temperature moves.
    for raw in [220, 235] {
        tokio::time::sleep(hold.saturating_sub(held_since.elapsed())).await;
        c.plc.write_u16(DIE_TEMPERATURE, raw).await;
        held_since = Instant::now();
    }
    tokio::time::sleep(hold).await;

    // The trend: the API's points are the values the PLC served, in the order it served them;
    // the page draws them and says the newest, the least and the most.
    let (code, body) = get(port, "/api/v1/trends", "");
    assert_eq!(code, 200, "{body}");
    let api: Value = serde_json::from_str(&body).unwrap();
    let trend = api["trends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "die_temperature")
        .unwrap_or_else(|| panic!("a trend of the published value: {api}"));
    let values: Vec<f64> = trend["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[1].as_f64().unwrap() * 10.0).round() / 10.0)
        .collect();
    let mut seen = values.clone();
    seen.dedup();
    let mut rest = served.iter();
    assert!(
        seen.iter().all(|v| rest.any(|s| s == v)),
        "the trend holds what the PLC served, in its order: {values:?}"
    );
    assert!(
        seen.ends_with(&[21.5, 22.0, 23.5]),
        "every value the PLC served for two steps is a point: {values:?}"
    );
    let low = if seen[0] == 0.0 { "0" } else { "21.5" };
    let row = "[...document.querySelectorAll('#trends tr')].map((tr) => [tr.cells[1].textContent, \
               tr.cells[2].textContent, tr.cells[4].textContent, \
               tr.querySelector('polyline').getAttribute('points').split(' ').length])[0]";
    // The Sparkplug row: the session Mosquitto delivered the node's data from is connected,
    // and nothing waits behind its cursor.
    let ndata = host
        .wait_for(|m| m.iter().any(|r| r.topic.contains("/NDATA/press4")), T)
        .await;
    assert!(ndata, "a Sparkplug host got the node's data");
    let sparkplug_row = "[...document.querySelectorAll('#delivery tr')].map((tr) => \
                         [...tr.cells].map((td) => td.textContent)).find((r) => r[0] == 'Sparkplug')";
    block_in_place(|| {
        page.until(
            sparkplug_row,
            T,
            "the Sparkplug row, connected, 0 waiting",
            |v| v[1] == "connected" && v[2] == "0" && v[4] == "0",
        )
    });
    let drawn = block_in_place(|| {
        page.until(row, T, "the die temperature's trend", |v| {
            v[0] == "die_temperature" && v[1] == "23.5" && v[2] == format!("{low} – 23.5")
        })
    });
    assert!(
        drawn[3].as_u64().unwrap() >= 3,
        "a line of the points: {drawn}"
    );

    let requests = block_in_place(|| page.requests());
    let page_loads = requests
        .iter()
        .filter(|u| **u == format!("{origin}/"))
        .count();
    assert_eq!(
        page_loads, 1,
        "one load, then updates in place: {requests:?}"
    );
    asked_only_the_runtime(&requests, &origin, 3);
    assert_eq!(
        page.security_log(),
        Vec::<Value>::new(),
        "nothing blocked by its policy"
    );

    // The runtime goes: the page says so, since when, within its 3 s, and greys what it shows.
    c.runtime.kill9();
    let live = "document.getElementById('live').textContent";
    block_in_place(|| {
        page.until(live, Duration::from_secs(10), "not answering", |v| {
            v == "not answering"
        })
    });
    let down = block_in_place(|| page.text("down")).unwrap_or_default();
    assert!(down.starts_with("The runtime is not answering"), "{down}");
    assert_eq!(
        block_in_place(|| page.text("order-good")).as_deref(),
        Some("9"),
        "the last answer stays, marked as such"
    );
    // Started again, the same page comes back by itself and goes on following the press.
    c.runtime.start_again();
    c.make(2, 0).await;
    block_in_place(|| {
        page.until(
            good,
            Duration::from_secs(30),
            "11 good after the restart",
            |v| v == "11",
        )
    });
    let live_now = block_in_place(|| page.text("live")).unwrap_or_default();
    assert!(live_now.starts_with("live"), "{live_now}");
}

/// The page in Firefox (Debian's ESR, kept open over Marionette): the good and scrap counts
/// are the ones MOM received, they move as the press makes parts without a reload, and the
/// page asks nobody but the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_firefox_the_page_shows_what_mom_received_and_follows_the_press() {
    use tokio::task::block_in_place;
    let port = free_port();
    let mut c = cell_with_page(&format!("127.0.0.1:{port}"), None, false).await;
    c.make(6, 1).await;
    assert_eq!(
        c.parts_of(json!("WO-P1")),
        (6, 1),
        "the subscriber got every part the PLC made"
    );
    let origin = format!("http://127.0.0.1:{port}");
    let mut page = block_in_place(|| marionette::Firefox::open(&firefox(), &format!("{origin}/")));
    let counts = "['order-good', 'order-scrap'].map((id) => \
                  (document.getElementById(id) || {}).textContent)";
    block_in_place(|| page.until(counts, T, "6 good and 1 scrap", |v| *v == json!(["6", "1"])));

    c.make(5, 2).await;
    assert_eq!(
        c.parts_of(json!("WO-P1")),
        (11, 3),
        "the subscriber got them"
    );
    block_in_place(|| {
        page.until(counts, T, "11 good and 3 scrap, without a reload", |v| {
            *v == json!(["11", "3"])
        })
    });
    // Firefox's own record of what the page fetched since it loaded.
    let fetched =
        block_in_place(|| page.eval("performance.getEntriesByType('resource').map((e) => e.name)"));
    let fetched: Vec<String> = serde_json::from_value(fetched).unwrap();
    asked_only_the_runtime(&fetched, &origin, 2);
    let shot = block_in_place(|| page.screenshot(&artefact("firefox-1024x768.png"), 1024, 768));
    assert_screenshot(&shot);
    assert_eq!(
        block_in_place(|| page.text("state")).as_deref(),
        Some("running"),
        "{}",
        page.log()
    );
}

/// Slow clients (slowloris: a request head a byte at a time, never finished), more of them than
/// the listener serves at once: each is dropped when its head is not in within the listener's
/// time for it, so that a monitoring agent behind them is answered after that time, not never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_hold_the_listener() {
    use mes_edge::ops::http::IO_TIMEOUT;
    use std::net::TcpStream;
    let port = free_port();
    let _cell = cell_with_page(&format!("127.0.0.1:{port}"), None, false).await;
    let slow: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ");
                let mut buf = [0u8; 512];
                loop {
                    assert!(
                        started.elapsed() < Duration::from_secs(60),
                        "a slow client held its connection for a minute"
                    );
                    if s.write_all(b"a").is_err() {
                        return started.elapsed();
                    }
                    match s.read(&mut buf) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        // Closed (or reset) by the server; nothing it can answer to a head
                        // never finished.
                        _ => return started.elapsed(),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    let (code, body) = tokio::task::spawn_blocking(move || get(port, "/health", ""))
        .await
        .unwrap();
    let waited = asked.elapsed();
    assert!(code == 200 || code == 503, "{code} {body}");
    assert!(
        waited < IO_TIMEOUT + Duration::from_secs(3),
        "/health waited {waited:?} behind slow clients (their heads may take {IO_TIMEOUT:?})"
    );
    let mut held: Vec<Duration> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    held.sort();
    assert!(
        held[15] < IO_TIMEOUT + Duration::from_secs(3),
        "the first 16 slow clients were dropped after their {IO_TIMEOUT:?}: {held:?}"
    );
}

/// `data` opened by Python's gzip module: a decoder that is not ours.
fn python_gunzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new(common::python_bin())
        .args([
            "-c",
            "import gzip, sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the test peers' Python");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "Python's gzip refused it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// One GET over a plain socket, as bytes: (head, body).
fn get_bytes(port: u16, target: &str, headers: &str) -> (String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(resp[..at].to_vec()).unwrap();
    (head.to_ascii_lowercase(), resp[at + 4..].to_vec())
}

/// The page comes gzipped to a client that takes gzip (both browsers above do, and show it),
/// plain to one that does not; Python's gzip opens the one into the other, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_comes_gzipped_to_who_takes_it_and_opens_into_the_plain_page() {
    let port = free_port();
    let _cell = cell_with_page(&format!("127.0.0.1:{port}"), None, false).await;
    let (head, plain) = get_bytes(port, "/", "");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    let (head, zipped) = get_bytes(port, "/", "Accept-Encoding: gzip, deflate, br\r\n");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(
        zipped.len() * 2 < plain.len(),
        "gzipped {} of {} bytes",
        zipped.len(),
        plain.len()
    );
    assert_eq!(python_gunzip(&zipped), plain);
    println!("PAGE | {} bytes, {} gzipped", plain.len(), zipped.len());
}

/// The encoder on what the page does not hold: more than DEFLATE's 32 KiB window, runs longer
/// than its longest match (258), bytes with no repeats, and text that repeats far back.
#[test]
fn gzip_of_long_runs_random_bytes_and_far_repeats_opens_in_python() {
    let gzip = mes_edge::ops::page::gzip::gzip;
    let mut lcg = 0x2545_f491u32;
    let mut noise = || {
        lcg = lcg.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (lcg >> 16) as u8
    };
    let phrase = b"press4 made a part; the order WO-17 took it. ";
    let mut mixed = Vec::new();
    for i in 0..3_000 {
        match i % 4 {
            0 => mixed.extend_from_slice(phrase),
            1 => mixed.extend((0..40).map(|_| noise())),
            2 => mixed.extend(std::iter::repeat_n(b'x', 1_000)),
            _ => mixed.extend_from_within(..100),
        }
    }
    for data in [
        Vec::new(),
        b"a".to_vec(),
        std::iter::repeat_n(0u8, 100_000).collect(),
        (0..70_000).map(|_| noise()).collect(),
        mixed,
    ] {
        assert_eq!(python_gunzip(&gzip(&data)), data, "{} bytes", data.len());
    }
}
