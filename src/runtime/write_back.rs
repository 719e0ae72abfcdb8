//! Write-back: the active order's number and target quantity written into the PLC when the
//! active order changes (and zeros when no order is active), so the machine's HMI shows what
//! the cell is working on. It goes through the drivers, on their connections.

use crate::config::CellConfig;
use crate::orders::JobOrder;
use mes_edge_drivers::{TagId, Value, WriteRequest};
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};

/// Where writes to each writable tag go.
pub type Writers = HashMap<TagId, mpsc::Sender<WriteRequest>>;

pub struct WriteBack {
    number: Option<(TagId, String, mpsc::Sender<WriteRequest>)>,
    target: Option<(TagId, String, mpsc::Sender<WriteRequest>)>,
    /// What was last written: (order id, target), or None for "no order". Unknown at start, so
    /// the first turn of the engine writes what is active (the PLC may have restarted too).
    last: Option<Option<(String, u64)>>,
    /// Every writable tag's driver channel, for write_tag commands.
    all: Writers,
}

impl WriteBack {
    pub fn new(config: &CellConfig, writers: &Writers) -> WriteBack {
        let find = |tag: &Option<(TagId, String)>| {
            let (id, name) = tag.clone()?;
            Some((id, name, writers.get(&id)?.clone()))
        };
        WriteBack {
            number: find(&config.roles.write_back_number),
            target: find(&config.roles.write_back_target),
            last: None,
            all: writers.clone(),
        }
    }

    /// A write_tag command's write, after its reply is committed: to the tag's driver, the
    /// driver's answer logged.
    pub fn write_tag(&self, w: crate::cell::TagWrite, handle: &tokio::runtime::Handle) {
        let Some(tx) = self.all.get(&w.tag).cloned() else {
            tracing::warn!(tag = %w.name, "write refused: no driver takes writes to this tag");
            return;
        };
        handle.spawn(async move {
            match write(&tx, w.tag, w.value).await {
                Ok(()) => tracing::info!(tag = %w.name, value = ?w.value, "tag written"),
                Err(e) => tracing::warn!(tag = %w.name, value = ?w.value, "tag write failed: {e}"),
            }
        });
    }

    /// Called after each commit with the order now active.
    pub fn after_commit(&mut self, active: Option<&JobOrder>, handle: &tokio::runtime::Handle) {
        if self.number.is_none() && self.target.is_none() {
            return;
        }
        let now = active.map(|o| (o.id().to_string(), o.spec.quantity));
        if self.last.as_ref() == Some(&now) {
            return;
        }
        self.last = Some(now.clone());
        let (number, target) = match &now {
            // The PLC holds a number: an order id of digits goes as that number; another id as 0.
            Some((id, qty)) => (id.parse::<u64>().unwrap_or(0), *qty),
            None => (0, 0),
        };
        for (slot, value) in [(&self.number, number), (&self.target, target)] {
            let Some((tag, name, tx)) = slot.clone() else {
                continue;
            };
            handle.spawn(async move {
                match write(&tx, tag, Value::UInt(value)).await {
                    Ok(()) => tracing::info!(tag = %name, value, "order write-back"),
                    Err(e) => tracing::warn!(tag = %name, value, "order write-back failed: {e}"),
                }
            });
        }
    }
}

/// Writes `value` to `tag` through its driver and waits for the driver's answer.
pub async fn write(
    tx: &mpsc::Sender<WriteRequest>,
    tag: TagId,
    value: Value,
) -> Result<(), String> {
    let (reply, answer) = oneshot::channel();
    let req = WriteRequest { tag, value, reply };
    match tx.send(req).await {
        Ok(()) => answer
            .await
            .unwrap_or_else(|_| Err("the driver stopped".into())),
        Err(_) => Err("the driver stopped".into()),
    }
}
