//! A device's sessions, as counting sees them (docs/EVENTS.md rule 7): each time the device
//! restarts, or may have, its session number grows, and a counter whose last reading was in an
//! earlier session takes its drop as a restart. What began a session is named in the events
//! of the drops it explains.
//!
//! Four things tell a restart: the device came back online after it was reported offline (a
//! PLC that restarts drops its connection, a gateway's blip does not); its OPC UA server reports
//! another start time; its uptime tag went back; its restart-count tag went up. The last three
//! are kept in the committed state, so they also tell a restart that happened while the runtime
//! itself was down, which no connection of this run saw.

use super::{Engine, Evidence};
pub use crate::vocabulary::RestartSign;
use serde::{Deserialize, Serialize};

/// A device's sessions as the engine saw them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceSession {
    /// One more at each restart told (see the module).
    pub number: u64,
    pub offline: bool,
    /// What told the latest restart; None (a store of an earlier release) is a reconnect.
    pub evidence: Option<Evidence>,
    /// The start time its server last reported, UTC ms.
    pub started_ms: Option<i64>,
    /// The last good readings of its uptime and restart-count tags.
    pub uptime: Option<u64>,
    pub restarts: Option<u64>,
}

impl DeviceSession {
    fn restarted(&mut self, evidence: Evidence) {
        self.number += 1;
        self.evidence = Some(evidence);
    }

    /// The device reported online or offline: back online after offline is a new session.
    pub fn status(&mut self, online: bool) {
        if online && self.offline {
            self.restarted(Evidence::SessionRestarted);
        }
        self.offline = !online;
    }

    /// Its server says it started at `at_ms`: another time than before is a restart. The first
    /// one known is only a baseline.
    pub fn server_started(&mut self, at_ms: i64) {
        if self.started_ms.is_some_and(|was| was != at_ms) {
            self.restarted(Evidence::ServerRestarted);
        }
        self.started_ms = Some(at_ms);
    }

    /// A good reading of the device's uptime or restart-count tag.
    pub fn restart_tag(&mut self, sign: RestartSign, value: u64) {
        let (last, evidence) = match sign {
            RestartSign::Uptime => (&mut self.uptime, Evidence::UptimeWentBack),
            RestartSign::RestartCount => (&mut self.restarts, Evidence::RestartCountRose),
        };
        let restarted = last.is_some_and(|was| match sign {
            RestartSign::Uptime => value < was,
            RestartSign::RestartCount => value > was,
        });
        *last = Some(value);
        if restarted {
            self.restarted(evidence);
        }
    }
}

impl Engine {
    /// The session of the device by name, made on first use.
    pub(super) fn session_of(&mut self, device: usize) -> &mut DeviceSession {
        let name = self
            .model
            .device_name(mes_edge_drivers::DeviceId(device as u32));
        // Its name is copied once, when the session is made, not at every reading of its tags.
        if !self.state.sessions.contains_key(name) {
            self.state
                .sessions
                .insert(name.to_string(), DeviceSession::default());
        }
        self.state.sessions.get_mut(name).expect("made above")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sign_of_a_restart_opens_a_session_and_first_readings_are_baselines() {
        let mut s = DeviceSession::default();
        s.server_started(1_000);
        s.restart_tag(RestartSign::Uptime, 50);
        s.restart_tag(RestartSign::RestartCount, 7);
        s.status(true);
        assert_eq!(
            s.number, 0,
            "first readings and a first online are no restart"
        );
        s.server_started(1_000);
        s.restart_tag(RestartSign::Uptime, 60);
        s.restart_tag(RestartSign::RestartCount, 7);
        assert_eq!(
            s.number, 0,
            "the same start time, a rising uptime, the same count"
        );
        s.server_started(2_000);
        assert_eq!((s.number, s.evidence), (1, Some(Evidence::ServerRestarted)));
        s.restart_tag(RestartSign::Uptime, 3);
        assert_eq!((s.number, s.evidence), (2, Some(Evidence::UptimeWentBack)));
        s.restart_tag(RestartSign::RestartCount, 8);
        assert_eq!(
            (s.number, s.evidence),
            (3, Some(Evidence::RestartCountRose))
        );
        s.status(false);
        s.status(true);
        assert_eq!(
            (s.number, s.evidence),
            (4, Some(Evidence::SessionRestarted))
        );
    }

    #[test]
    fn a_session_of_an_earlier_release_reads_with_nothing_told() {
        let s: DeviceSession = serde_json::from_str(r#"{"number":3,"offline":false}"#).unwrap();
        assert_eq!((s.number, s.evidence, s.started_ms), (3, None, None));
    }
}
