//! Bad input from the wire: a fake Modbus server and a fake MQTT broker that send malformed,
//! truncated and oversized frames to the real runtime. Each gets a clear error in the log, the
//! runtime neither panics nor exits, and once the peers behave every part made meanwhile is
//! counted and delivered: nothing is lost.
//!
//! The fakes are raw TCP servers written here because no real peer can be told to misbehave
//! this way; the good behaviour around them is real Mosquitto.

use crate::common;

use common::cell::{write_config_with, Delivery, TOPIC_FILTER};
use common::{Collector, Mosquitto, RuntimeProcess};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

fn spawn(config: &std::path::Path) -> RuntimeProcess {
    RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()])
}

// ------------------------------------------------------------------------------------------
// A fake Modbus TCP server
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    Good,
    /// The header promises more bytes than come; then the connection closes.
    Truncated,
    /// A length field of 65535 (a Modbus frame is at most 260 bytes), then a flood of bytes.
    Oversized,
    /// The answer of another transaction.
    WrongTransaction,
    /// A register read answered as a write.
    WrongFunction,
    /// The byte count says 48, two bytes follow.
    ShortByteCount,
    /// Exception 0x0B, gateway target failed to respond.
    Exception,
    /// Bytes that are no Modbus at all.
    Garbage,
    /// The request is read, never answered.
    Silent,
}

struct FakePlc {
    port: u16,
    reply: Arc<Mutex<Reply>>,
    /// The machine's good counter (holding 0-1), counting all the time.
    count: Arc<AtomicU32>,
}

impl FakePlc {
    async fn start() -> FakePlc {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let reply = Arc::new(Mutex::new(Reply::Good));
        let count = Arc::new(AtomicU32::new(1000));
        let (r, c) = (reply.clone(), count.clone());
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve_modbus(conn, r.clone(), c.clone()));
            }
        });
        let c = count.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(40)).await;
                c.fetch_add(1, Ordering::SeqCst);
            }
        });
        FakePlc { port, reply, count }
    }
}

async fn serve_modbus(mut conn: TcpStream, reply: Arc<Mutex<Reply>>, count: Arc<AtomicU32>) {
    let mut header = [0u8; 7];
    loop {
        if conn.read_exact(&mut header).await.is_err() {
            return;
        }
        let len = u16::from_be_bytes([header[4], header[5]]) as usize;
        let mut pdu = vec![0u8; len.saturating_sub(1).min(260)];
        if conn.read_exact(&mut pdu).await.is_err() || pdu.is_empty() {
            return;
        }
        let (tid, unit, fc) = (
            u16::from_be_bytes([header[0], header[1]]),
            header[6],
            pdu[0],
        );
        let quantity = pdu
            .get(3..5)
            .map_or(1, |q| u16::from_be_bytes([q[0], q[1]]));
        let good_pdu = || -> Vec<u8> {
            match fc {
                3 | 4 => {
                    let n = count.load(Ordering::SeqCst);
                    let mut regs = vec![0u16; quantity as usize];
                    if regs.len() >= 4 {
                        regs[0] = (n >> 16) as u16;
                        regs[1] = n as u16;
                        regs[3] = 1; // running
                    }
                    let mut p = vec![fc, (regs.len() * 2) as u8];
                    regs.iter().for_each(|r| p.extend(r.to_be_bytes()));
                    p
                }
                1 | 2 => vec![fc, quantity.div_ceil(8) as u8, 0, 0]
                    [..2 + quantity.div_ceil(8) as usize]
                    .to_vec(),
                _ => pdu[..5.min(pdu.len())].to_vec(),
            }
        };
        let frame = |tid: u16, pdu: &[u8], len: u16| {
            let mut f = tid.to_be_bytes().to_vec();
            f.extend([0, 0]);
            f.extend(len.to_be_bytes());
            f.push(unit);
            f.extend(pdu);
            f
        };
        let mode = *reply.lock().unwrap();
        let bytes = match mode {
            Reply::Good => {
                let p = good_pdu();
                frame(tid, &p, p.len() as u16 + 1)
            }
            Reply::Truncated => {
                let p = good_pdu();
                let mut f = frame(tid, &p, p.len() as u16 + 1);
                f.truncate(9);
                let _ = conn.write_all(&f).await;
                return;
            }
            Reply::Oversized => {
                let mut f = frame(tid, &[3, 0xff], 0xffff);
                f.extend(vec![0x55; 8192]);
                f
            }
            Reply::WrongTransaction => {
                let p = good_pdu();
                frame(tid.wrapping_add(7), &p, p.len() as u16 + 1)
            }
            Reply::WrongFunction => frame(tid, &[0x10, 0, 0, 0, 2], 6),
            Reply::ShortByteCount => frame(tid, &[fc, 48, 0, 1], 5),
            Reply::Exception => frame(tid, &[fc | 0x80, 0x0b], 3),
            Reply::Garbage => b"HTTP/1.1 400 Bad Request\r\n\r\n\xff\xfe\x00".to_vec(),
            Reply::Silent => continue,
        };
        if conn.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

fn cell(dir: &std::path::Path, modbus: u16, mqtt: u16) -> std::path::PathBuf {
    write_config_with(dir, modbus, mqtt, "[health]\nenabled = false\n")
}

async fn wait_good_parts(c: &Collector, n: u64) -> Delivery {
    c.wait_for(
        |m| Delivery::of(m).parts("good") >= n,
        Duration::from_secs(30),
    )
    .await;
    Delivery::of(&c.snapshot())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modbus_device_sending_broken_frames_gets_a_clear_error_and_loses_no_part() {
    let broker = Mosquitto::start();
    let plc = FakePlc::start().await;
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let mut rt = spawn(&cell(dir.path(), plc.port, broker.port()));
    // Counting from the runtime's first reading: the first count's previous value.
    let d = wait_good_parts(&collector, 1).await;
    let baseline = d
        .of_type("part_count")
        .next()
        .map(|e| e["data"]["previous_value"].as_u64().unwrap())
        .unwrap_or_else(|| panic!("no part counted\n{}", rt.logs()));

    for bad in [
        Reply::Truncated,
        Reply::Oversized,
        Reply::WrongTransaction,
        Reply::WrongFunction,
        Reply::ShortByteCount,
        Reply::Exception,
        Reply::Garbage,
        Reply::Silent,
    ] {
        let log_before = rt.stderr().len();
        let seen_before = collector.snapshot().len();
        *plc.reply.lock().unwrap() = bad;
        // Two attempts of 500 ms each before a device counts as silent.
        tokio::time::sleep(Duration::from_millis(3000)).await;
        *plc.reply.lock().unwrap() = Reply::Good;
        // The error shows as a warning in the log, or (a refused read: an exception) as bad
        // quality on the tags read, which turns the machine state unknown.
        let log = rt.stderr();
        let said: Vec<String> = log[log_before..]
            .lines()
            .filter(|l| (l.contains("WARN") || l.contains("ERROR")) && l.contains("modbus"))
            .map(str::to_string)
            .chain(collector.snapshot()[seen_before..].iter().filter_map(|m| {
                let d = &m.payload["data"];
                let bad = d["online"] == false || d["state"] == "unknown";
                bad.then(|| format!("event {}: {}", m.payload["type"], d))
            }))
            .collect();
        assert!(
            !said.is_empty(),
            "{bad:?}: no warning in the log, no bad quality\n{}",
            rt.logs()
        );
        println!("{bad:?}: {}", said[0]);
        assert!(
            rt.is_running(),
            "{bad:?}: the runtime exited\n{}",
            rt.logs()
        );
        // Good again: the device is read again (reconnecting after up to a few seconds).
        let want = plc.count.load(Ordering::SeqCst) as u64 - baseline;
        let d = wait_good_parts(&collector, want).await;
        assert!(
            d.parts("good") >= want,
            "{bad:?}: counting resumed\n{}",
            rt.logs()
        );
    }
    assert!(!rt.stderr().contains("panicked"), "{}", rt.logs());
    let status = rt.terminate();
    assert!(status.success(), "{status}\n{}", rt.logs());
    let d = Delivery::of(&collector.snapshot());
    d.assert_gap_free();
    // Every part was counted once: the last reading's counter value minus the baseline.
    let last = d
        .of_type("part_count")
        .filter(|e| e["data"]["counter"] == "good")
        .last()
        .map(|e| e["data"]["counter_value"].as_u64().unwrap())
        .unwrap();
    assert_eq!(
        d.parts("good"),
        last - baseline,
        "parts equal the counter's travel, none twice"
    );
    assert_eq!(
        d.of_type("counter_reset").count(),
        0,
        "no broken frame read as a counter jump"
    );
}

// ------------------------------------------------------------------------------------------
// A fake MQTT broker: misbehaves on the first connections, then hands over to Mosquitto
// ------------------------------------------------------------------------------------------

/// What the fake broker answers to a CONNECT, one per connection, in order.
#[derive(Clone, Copy, Debug)]
enum Broken {
    /// Bytes that are no MQTT packet.
    Garbage,
    /// A CONNACK cut short, then the connection closes.
    TruncatedConnAck,
    /// CONNACK refusing the client (not authorized).
    Refused,
    /// A good CONNACK, then a PUBLISH announcing 256 MB (over the client's 16 MB limit).
    OversizedPublish,
    /// A good CONNACK, then a PUBLISH whose topic length runs past the packet.
    MalformedPublish,
    /// A good CONNACK, then a PUBACK for a packet the runtime never sent.
    UnknownPubAck,
    /// A good CONNACK, then a SUBACK refusing the command subscription (MQTT 5: not
    /// authorized). Mosquitto's ACL file never refuses a SUBSCRIBE (it filters at delivery).
    RefusedSubscription,
}

/// MQTT 5 (the runtime's default): flags, reason code, then an empty property list.
const GOOD_CONNACK: [u8; 5] = [0x20, 0x03, 0x00, 0x00, 0x00];

fn broken_bytes(b: Broken) -> Vec<u8> {
    match b {
        Broken::Garbage => b"SSH-2.0-OpenSSH_9.2\r\n\x00\xff".to_vec(),
        Broken::TruncatedConnAck => vec![0x20, 0x03, 0x00],
        Broken::Refused => vec![0x20, 0x03, 0x00, 0x87, 0x00],
        Broken::OversizedPublish => [
            &GOOD_CONNACK[..],
            &[0x30, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x01, b'x'],
        ]
        .concat(),
        Broken::MalformedPublish => [
            &GOOD_CONNACK[..],
            &[0x30, 0x06, 0x00, 0x40, b'm', b'e', b's', 0x00],
        ]
        .concat(),
        Broken::UnknownPubAck => [&GOOD_CONNACK[..], &[0x40, 0x02, 0x03, 0xe7]].concat(),
        // Packet id 1: the subscription is the client's first packet with an id.
        Broken::RefusedSubscription => {
            [&GOOD_CONNACK[..], &[0x90, 0x04, 0x00, 0x01, 0x00, 0x87]].concat()
        }
    }
}

/// Listens on a port; the n-th connection gets `script[n]`, every later one is forwarded to the
/// real broker at `upstream`.
async fn fake_broker(script: Vec<Broken>, upstream: u16) -> (u16, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicU32::new(0));
    let s = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let n = s.fetch_add(1, Ordering::SeqCst) as usize;
            match script.get(n).copied() {
                Some(b) => {
                    tokio::spawn(async move {
                        let mut connect = [0u8; 512];
                        let _ = conn.read(&mut connect).await;
                        let _ = conn.write_all(&broken_bytes(b)).await;
                        // Hold the connection a moment, as a confused peer would.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    });
                }
                None => {
                    tokio::spawn(async move {
                        if let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)).await {
                            let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
                        }
                    });
                }
            }
        }
    });
    (port, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_peer_sending_broken_packets_gets_a_clear_error_and_loses_no_event() {
    let broker = Mosquitto::start();
    let plc = FakePlc::start().await;
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let script = vec![
        Broken::Garbage,
        Broken::TruncatedConnAck,
        Broken::Refused,
        Broken::OversizedPublish,
        Broken::MalformedPublish,
        Broken::UnknownPubAck,
        Broken::RefusedSubscription,
    ];
    let (port, served) = fake_broker(script.clone(), broker.port()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = cell(dir.path(), plc.port, port);
    let mut rt = spawn(&config);
    // Through every broken peer to the real broker. Each broken connection dies within
    // seconds of its CONNACK, so the reconnect delays do not start over (issue 22): 0.5, 1, 2,
    // 4, 8, 16 and 30 s, about 62 s before the real broker.
    let ok = collector
        .wait_for(
            |m| m.iter().any(|m| m.topic.ends_with("/part_count")),
            Duration::from_secs(120),
        )
        .await;
    assert!(ok, "never reached the real broker\n{}", rt.logs());
    assert!(served.load(Ordering::SeqCst) as usize > script.len());
    let log = rt.stderr();
    let lost: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("broker connection lost"))
        .collect();
    for l in &lost {
        println!("{l}");
    }
    assert!(
        lost.len() >= script.len(),
        "one clear error per broken peer\n{}",
        rt.logs()
    );
    // The cause itself, also where the client's event loop died right after a CONNACK (it
    // used to read "subscribing to commands: Failed to send mqtt requests to eventloop").
    for expect in [
        "bytes remaining on stream",
        "return code: `NotAuthorized`",
        "exceeded by packet of 268435455 bytes",
        "Promised boundary crossed",
        "unsolicited ack pkid: 999",
        "the broker refused the cell's subscription to its command topic",
        "reason=not authorized (0x87)",
    ] {
        assert!(
            log.contains(expect),
            "the log names {expect:?}\n{}",
            rt.logs()
        );
    }
    assert!(!log.contains("panicked"), "{}", rt.logs());
    assert!(rt.is_running());

    // An oversized and a broken command through the real broker: rejected with a reply.
    let big = format!(
        r#"{{"correlation_id":"big","command":"stop","order_id":"{}"}}"#,
        "W".repeat(100_000)
    );
    for payload in [
        big.into_bytes(),
        b"{\"correlation_id\":\"cut\",\"comm".to_vec(),
        vec![0xff, 0xfe, 0x00],
    ] {
        common::mqtt_publish(
            broker.port(),
            common::cell::COMMAND_TOPIC,
            payload,
            rumqttc::QoS::AtLeastOnce,
            false,
            Duration::from_secs(10),
        )
        .await;
    }
    let replied = collector
        .wait_for(
            |m| {
                m.iter()
                    .filter(|m| {
                        m.topic.ends_with("/responses") && m.payload["data"]["accepted"] == false
                    })
                    .count()
                    >= 3
            },
            Duration::from_secs(20),
        )
        .await;
    assert!(replied, "three rejections\n{}", rt.logs());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(rt.terminate().success());
    // Nothing lost: every committed event at the broker, gap-free.
    let d = Delivery::of(&collector.snapshot());
    d.assert_gap_free();
    let stats = std::process::Command::new(BIN)
        .args(["outbox", "stats", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&stats.stdout);
    let last: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("last committed seq:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        d.last_seq(),
        last,
        "the broker has every committed event\n{stats}"
    );
    assert!(stats.contains("depth (undelivered): 0"), "{stats}");
}
