//! What the edge node hears on its subscriptions (NCMD, DCMD, the primary host's STATE) and what
//! it makes of it. Kept across connections: the retained commands already reported, the rebirth
//! window, the primary host's last STATE and the command queue.

use super::commands::Intake;
use super::guard::{
    state_from_the_future, RebirthWindow, RetainedSeen, MAX_COMMAND_BYTES, REBIRTH_WINDOW,
};
use super::settings::SparkplugSettings;
use super::topics::Topics;
use super::wire::{asks_rebirth, host_state, Incoming};
use crate::logging::{field, Throttle};
use crate::ops::SparkplugProbe;
use mes_edge_drivers::now_ms;
use std::time::{Duration, Instant};

/// What the session is to do about a message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Heard {
    Nothing,
    Rebirth,
    HostOnline,
    HostOffline,
}

pub(super) struct Inbound {
    intake: Intake,
    retained: RetainedSeen,
    rebirth: RebirthWindow,
    /// Oversized commands and refused STATEs: a flood of either is a few lines.
    warnings: Throttle,
    probe: SparkplugProbe,
    /// The primary host's last STATE timestamp on each server: an older message is stale (a
    /// retained older STATE after a reconnect, say). Per server, since the host stamps each of
    /// its sessions with that session's own connect time.
    host_ts: Vec<i64>,
}

impl Inbound {
    pub fn new(s: &SparkplugSettings) -> Inbound {
        Inbound {
            intake: Intake::start(s),
            retained: RetainedSeen::new(),
            rebirth: RebirthWindow::new(REBIRTH_WINDOW),
            warnings: Throttle::new(Duration::from_secs(10), 10),
            probe: s.probe.clone(),
            host_ts: vec![0; s.mqtt.len()],
        }
    }

    pub fn heard(&mut self, s: &SparkplugSettings, m: &Incoming, born: bool) -> Heard {
        let t = &s.topics;
        let ncmd = m.topic == t.node("NCMD");
        let device = t.device_of(&m.topic);
        if ncmd || device.is_some() {
            if m.retained {
                // Stored on the broker by someone, sent again at every subscribe: not a command
                // anyone gives now.
                self.probe.command_refused();
                // Once per message, and a broker holding thousands of them is still a few lines.
                if self.retained.first_time(&m.topic, &m.payload) {
                    self.warn(format_args!(
                        "Sparkplug command ignored: it is retained on the broker, so not new (said once per message): {} bytes on {}",
                        m.payload.len(),
                        field(&m.topic)
                    ));
                }
                return Heard::Nothing;
            }
            if m.payload.len() > MAX_COMMAND_BYTES {
                self.probe.command_refused();
                self.warn(format_args!(
                    "Sparkplug command refused: {} bytes, more than {MAX_COMMAND_BYTES} on {}",
                    m.payload.len(),
                    field(&m.topic)
                ));
                return Heard::Nothing;
            }
        }
        if ncmd {
            // Before the birth, the birth to come answers it.
            if asks_rebirth(&m.payload) && born {
                self.probe.rebirth_requested();
                if self.rebirth.request(Instant::now()) {
                    tracing::info!("Sparkplug rebirth requested");
                    return Heard::Rebirth;
                }
            }
            return Heard::Nothing;
        }
        if let Some(device) = device {
            self.intake.device_command(s, device, &m.payload);
            return Heard::Nothing;
        }
        let primary = s.primary_host.as_deref();
        if primary.is_some_and(|host| m.topic == Topics::state(host)) {
            return self.state(&m.payload, s.mqtt.index());
        }
        Heard::Nothing
    }

    fn state(&mut self, payload: &[u8], server: usize) -> Heard {
        let Some((online, ts)) = host_state(payload) else {
            self.warn(format_args!(
                "primary host STATE refused: not {{\"online\": bool, \"timestamp\": ms}}: {}",
                crate::logging::field_bytes(payload)
            ));
            return Heard::Nothing;
        };
        let now = now_ms();
        if state_from_the_future(ts, now) {
            self.probe.state_refused();
            self.warn(format_args!(
                "primary host STATE refused: its timestamp {ts} is {} s ahead of this PC's clock",
                (ts - now) / 1000
            ));
            return Heard::Nothing;
        }
        if ts < self.host_ts[server] {
            return Heard::Nothing;
        }
        self.host_ts[server] = ts;
        self.probe.host_state(online, ts);
        if online {
            Heard::HostOnline
        } else {
            Heard::HostOffline
        }
    }

    fn warn(&mut self, what: std::fmt::Arguments) {
        if let Some(held_back) = self.warnings.allow() {
            tracing::warn!(held_back, "{what}");
        }
    }

    /// At every tick of a born session: whether a held rebirth request is due now.
    pub fn rebirth_due(&mut self) -> bool {
        self.rebirth.due(Instant::now())
    }

    /// A birth was published: it answers any rebirth request waiting.
    pub fn born(&mut self) {
        self.rebirth.born(Instant::now());
        self.probe.born();
    }
}
