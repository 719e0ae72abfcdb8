//! The job order state machine of OPC UA for ISA-95 Job Control (OPC 10031-4), as data.
//!
//! States and commands carry the spec's names so an integrator recognises them. The table below
//! is the only place transitions are defined; everything else asks [`transition`].

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    NotAllowedToStart,
    AllowedToStart,
    Running,
    Interrupted,
    Ended,
    Aborted,
}

/// Substates that add meaning at the cell (OPC 10031-4 leaves them to the implementation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubState {
    /// Interrupted by a Pause command (MOM, operator or PLC).
    Held,
    /// Ended by reaching the target quantity, or by Stop at or above it.
    Completed,
    /// Ended by Stop before the target quantity was reached.
    Closed,
}

/// The commands of OPC 10031-4's job order receiver, plus `Begin`: the receiver's own
/// AllowedToStart → Running step when the cell is free (the spec's internal transition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobCommand {
    Store,
    StoreAndStart,
    Start,
    Update,
    Pause,
    Resume,
    Stop,
    Abort,
    Cancel,
    Clear,
    RevokeStart,
    Begin,
}

impl JobCommand {
    pub const ALL: [JobCommand; 12] = [
        JobCommand::Store,
        JobCommand::StoreAndStart,
        JobCommand::Start,
        JobCommand::Update,
        JobCommand::Pause,
        JobCommand::Resume,
        JobCommand::Stop,
        JobCommand::Abort,
        JobCommand::Cancel,
        JobCommand::Clear,
        JobCommand::RevokeStart,
        JobCommand::Begin,
    ];

    /// Commands that create an order rather than act on one.
    pub fn creates(self) -> bool {
        matches!(self, JobCommand::Store | JobCommand::StoreAndStart)
    }
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::NotAllowedToStart,
        JobState::AllowedToStart,
        JobState::Running,
        JobState::Interrupted,
        JobState::Ended,
        JobState::Aborted,
    ];

    /// Ended and Aborted orders only wait to be cleared.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Ended | JobState::Aborted)
    }
}

/// What a command does to an existing order: its next state, or None where the order leaves the
/// list (Cancel, Clear). The table follows OPC 10031-4's transitions; a pair not listed is
/// refused.
const TABLE: &[(JobState, JobCommand, Option<JobState>)] = {
    use JobCommand::*;
    use JobState::*;
    &[
        (NotAllowedToStart, Update, Some(NotAllowedToStart)),
        (NotAllowedToStart, Start, Some(AllowedToStart)),
        (NotAllowedToStart, Abort, Some(Aborted)),
        (NotAllowedToStart, Cancel, None),
        (AllowedToStart, Update, Some(AllowedToStart)),
        (AllowedToStart, RevokeStart, Some(NotAllowedToStart)),
        (AllowedToStart, Begin, Some(Running)),
        (AllowedToStart, Abort, Some(Aborted)),
        (AllowedToStart, Cancel, None),
        (Running, Pause, Some(Interrupted)),
        (Running, Stop, Some(Ended)),
        (Running, Abort, Some(Aborted)),
        (Interrupted, Resume, Some(Running)),
        (Interrupted, Stop, Some(Ended)),
        (Interrupted, Abort, Some(Aborted)),
        (Ended, Clear, None),
        (Aborted, Clear, None),
    ]
};

/// The next state of an order in `state` given `command`: `Ok(Some(next))`, `Ok(None)` when the
/// order leaves the list, or the reason it is refused.
pub fn transition(state: JobState, command: JobCommand) -> Result<Option<JobState>, String> {
    if command.creates() {
        return Err(format!(
            "{command:?} creates an order; an order with this id already exists ({state:?})"
        ));
    }
    TABLE
        .iter()
        .find(|(s, c, _)| *s == state && *c == command)
        .map(|(_, _, next)| *next)
        .ok_or_else(|| {
            let allowed: Vec<String> = TABLE
                .iter()
                .filter(|(s, c, _)| *s == state && *c != JobCommand::Begin)
                .map(|(_, c, _)| format!("{c:?}"))
                .collect();
            format!(
                "{command:?} is not allowed in state {state:?} (allowed: {})",
                allowed.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobCommand::*;
    use JobState::*;

    /// Every state × every command, written out: the expected outcome of each pair.
    #[test]
    fn every_state_and_command() {
        let expected = |s: JobState, c: JobCommand| -> Option<Option<JobState>> {
            match (s, c) {
                (NotAllowedToStart, Update) => Some(Some(NotAllowedToStart)),
                (NotAllowedToStart, Start) => Some(Some(AllowedToStart)),
                (NotAllowedToStart | AllowedToStart | Running | Interrupted, Abort) => {
                    Some(Some(Aborted))
                }
                (NotAllowedToStart | AllowedToStart, Cancel) => Some(None),
                (AllowedToStart, Update) => Some(Some(AllowedToStart)),
                (AllowedToStart, RevokeStart) => Some(Some(NotAllowedToStart)),
                (AllowedToStart, Begin) => Some(Some(Running)),
                (Running, Pause) => Some(Some(Interrupted)),
                (Running | Interrupted, Stop) => Some(Some(Ended)),
                (Interrupted, Resume) => Some(Some(Running)),
                (Ended | Aborted, Clear) => Some(None),
                _ => None,
            }
        };
        let mut allowed = 0;
        for s in JobState::ALL {
            for c in JobCommand::ALL {
                match (transition(s, c), expected(s, c)) {
                    (Ok(next), Some(want)) => {
                        assert_eq!(next, want, "{s:?} × {c:?}");
                        allowed += 1;
                    }
                    (Err(reason), None) => {
                        assert!(
                            reason.contains(&format!("{c:?}")),
                            "the reason names the command: {reason}"
                        );
                    }
                    (got, want) => panic!("{s:?} × {c:?}: got {got:?}, expected {want:?}"),
                }
            }
        }
        assert_eq!(
            allowed,
            TABLE.len(),
            "the table has no pair the spec list lacks"
        );
    }

    #[test]
    fn a_refusal_says_what_is_allowed() {
        let reason = transition(Ended, Pause).unwrap_err();
        assert_eq!(
            reason,
            "Pause is not allowed in state Ended (allowed: Clear)"
        );
    }
}
