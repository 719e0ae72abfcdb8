//! Taking notifications in: from the session's inbox into samples, also while the device loop
//! waits for a service call of its own (the inbox would otherwise fill, the event loop stop,
//! and the call's answer never be read), and keeping count of which monitored nodes still owe
//! their first value.

use super::report::Report;
use crate::opcua::convert::reading;
use crate::opcua::inbox::{Inbox, Note};
use crate::opcua::OpcUaDevice;
use crate::Sample;
use std::future::Future;
use std::sync::Arc;

pub(super) struct Intake<'a> {
    dev: &'a OpcUaDevice,
    pub(super) inbox: Arc<Inbox>,
    /// A value came for the node in this session.
    seen: Vec<bool>,
    /// Monitored in this session and still without a value.
    awaiting: Vec<bool>,
    left: usize,
}

impl<'a> Intake<'a> {
    pub(super) fn new(dev: &'a OpcUaDevice, inbox: Arc<Inbox>) -> Self {
        Intake {
            dev,
            inbox,
            seen: vec![false; dev.nodes.len()],
            awaiting: vec![false; dev.nodes.len()],
            left: 0,
        }
    }

    /// Node `i` is monitored now: its first value is due (unless it came already).
    pub(super) fn expect_first(&mut self, i: usize) {
        if !self.seen[i] && !self.awaiting[i] {
            self.awaiting[i] = true;
            self.left += 1;
        }
    }

    /// Monitored nodes still without a first value.
    pub(super) fn awaiting(&self) -> usize {
        self.left
    }

    /// Hands on the values a notification brought. An error is the end of a subscription.
    pub(super) fn take(
        &mut self,
        note: Note,
        report: &mut Report<'_>,
        out: &mut Vec<Sample>,
    ) -> Result<(), String> {
        match note {
            Note::Values(values) => {
                for (handle, dv) in values {
                    let i = handle.wrapping_sub(1) as usize;
                    let Some(node) = self.dev.nodes.get(i) else {
                        continue;
                    };
                    report.changed(i, reading(&dv, node.expect), out);
                    self.seen[i] = true;
                    if self.awaiting[i] {
                        self.awaiting[i] = false;
                        self.left -= 1;
                    }
                }
                Ok(())
            }
            Note::Ended { group, status } => Err(format!(
                "the server ended subscription {:?} ({status})",
                self.dev.groups[group].name
            )),
        }
    }

    /// Awaits `call` while taking in the notifications that arrive meanwhile (into `out`).
    pub(super) async fn meanwhile<F: Future>(
        &mut self,
        call: F,
        report: &mut Report<'_>,
        out: &mut Vec<Sample>,
    ) -> Result<F::Output, String> {
        tokio::pin!(call);
        let inbox = self.inbox.clone();
        loop {
            tokio::select! {
                biased;
                r = &mut call => return Ok(r),
                note = inbox.next() => self.take(note, report, out)?,
            }
        }
    }
}
