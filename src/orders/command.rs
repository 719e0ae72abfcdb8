//! Commands from MOM, the operator and the PLC, and the reply each one gets. All three come in
//! through the same door (the engine's command channel) in the same JSON shape.

use super::order::OrderSpec;
use super::state_machine::JobCommand;
use serde::{Deserialize, Serialize};

/// Largest command payload taken; larger ones are rejected unread.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Who sent a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandSource {
    Mqtt,
    Operator,
    Plc,
    /// A Sparkplug B host's DCMD (a tag write).
    Sparkplug,
    /// The runtime itself: auto-completion at the target quantity, starting the next order.
    Cell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandName {
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
    /// Attach a reason to the current stop (or the last one, if the cell is running again).
    DowntimeReason,
    /// Give `quantity` unexplained scrap parts of an order (default: the active one) `reason`.
    ScrapReason,
    /// Record material consumed by an order (default: the running one).
    ConsumeMaterial,
    /// Set a tag marked `write = true` to `value` (a Sparkplug DCMD comes this way).
    WriteTag,
}

impl CommandName {
    pub fn job_command(self) -> Option<JobCommand> {
        Some(match self {
            CommandName::Store => JobCommand::Store,
            CommandName::StoreAndStart => JobCommand::StoreAndStart,
            CommandName::Start => JobCommand::Start,
            CommandName::Update => JobCommand::Update,
            CommandName::Pause => JobCommand::Pause,
            CommandName::Resume => JobCommand::Resume,
            CommandName::Stop => JobCommand::Stop,
            CommandName::Abort => JobCommand::Abort,
            CommandName::Cancel => JobCommand::Cancel,
            CommandName::Clear => JobCommand::Clear,
            CommandName::RevokeStart => JobCommand::RevokeStart,
            CommandName::DowntimeReason
            | CommandName::ScrapReason
            | CommandName::ConsumeMaterial
            | CommandName::WriteTag => return None,
        })
    }
}

/// A command as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub correlation_id: String,
    pub command: CommandName,
    /// The order, for store, store_and_start and update.
    pub order: Option<OrderSpec>,
    /// The order acted on, for the other order commands.
    pub order_id: Option<String>,
    pub reason: Option<String>,
    /// Scrap parts, for scrap_reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u64>,
    /// The lot consumed, for consume_material.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material: Option<MaterialIn>,
    /// The tag and the value, for write_tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// When the sender issued it: UTC ms, or RFC 3339 text. Its age is judged from here
    /// against the cell's maximum age for the command (docs/COMMANDS.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<serde_json::Value>,
    /// The last moment it may be applied: UTC ms, or RFC 3339 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<serde_json::Value>,
}

impl Command {
    /// `issued_at` in UTC ms, if given (checked by [`parse`]).
    pub fn issued_ms(&self) -> Option<i64> {
        self.issued_at.as_ref().and_then(|v| instant(v).ok())
    }

    /// `expires_at` in UTC ms, if given (checked by [`parse`]).
    pub fn expires_ms(&self) -> Option<i64> {
        self.expires_at.as_ref().and_then(|v| instant(v).ok())
    }
}

/// A moment in a command: UTC ms since the epoch, or RFC 3339 text with its offset.
fn instant(v: &serde_json::Value) -> Result<i64, String> {
    match v {
        serde_json::Value::Number(n) => n
            .as_i64()
            .filter(|ms| (0..=253_402_300_799_999).contains(ms))
            .ok_or_else(|| format!("expected UTC ms since 1970, found {n}")),
        serde_json::Value::String(s) => s
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_millisecond())
            .map_err(|e| format!("expected RFC 3339 time like \"2026-12-06T10:00:00Z\": {e}")),
        other => Err(format!("expected UTC ms or RFC 3339 text, found {other}")),
    }
}

/// Material consumed, as a command reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaterialIn {
    pub material: String,
    pub lot: String,
    pub quantity: f64,
    /// Default "pcs".
    #[serde(default = "pieces")]
    pub unit: String,
}

fn pieces() -> String {
    "pcs".into()
}

/// What became of a command. `accepted` in a reply is `status == accepted`, kept for the
/// integrations written before the other outcomes existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyStatus {
    /// Applied; for write_tag: checked, and the driver will be asked to write exactly that.
    Accepted,
    /// Not applied, `reason` says why.
    Rejected,
    /// Not applied: it arrived or waited past its expiry or the cell's maximum age for it.
    Expired,
    /// Not applied: the cell could not take it now; send it again later.
    Busy,
}

/// MQTT 5 request/response: where a copy of the reply goes, with the request's Correlation
/// Data (hex in the reply's JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseRoute {
    pub topic: String,
    pub correlation_data: Option<Vec<u8>>,
}

/// The reply to a command, published on the cell's response topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Echoed from the command; null when the payload was too broken to find it.
    pub correlation_id: Option<String>,
    pub command: Option<CommandName>,
    pub order_id: Option<String>,
    pub accepted: bool,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// The order's state after the command.
    pub state: Option<super::JobState>,
    /// True if this correlation id was seen before: the command was not applied again, and
    /// this is the first reply once more.
    pub duplicate: bool,
    /// None only in replies stored by a release before it existed (see [`Reply::status`]).
    #[serde(default)]
    pub status: Option<ReplyStatus>,
    /// MQTT 5: the request's Response Topic, where a copy of this reply is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_topic: Option<String>,
    /// MQTT 5: the request's Correlation Data, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_data: Option<String>,
}

impl Reply {
    /// What became of the command, also for a reply stored before `status` existed.
    pub fn status(&self) -> ReplyStatus {
        self.status.unwrap_or(if self.accepted {
            ReplyStatus::Accepted
        } else {
            ReplyStatus::Rejected
        })
    }

    /// `cmd` applied.
    pub fn accepted(cmd: &Command, order_id: Option<String>) -> Reply {
        Reply {
            correlation_id: Some(cmd.correlation_id.clone()),
            command: Some(cmd.command),
            order_id,
            accepted: true,
            reason: None,
            state: None,
            duplicate: false,
            status: Some(ReplyStatus::Accepted),
            response_topic: None,
            correlation_data: None,
        }
    }

    /// Not applied, with `status` (rejected, expired or busy) and the reason.
    pub fn refused(cmd: Option<&Command>, status: ReplyStatus, reason: impl Into<String>) -> Reply {
        Reply {
            status: Some(status),
            ..Reply::rejected(cmd, reason)
        }
    }

    pub fn rejected(cmd: Option<&Command>, reason: impl Into<String>) -> Reply {
        Reply {
            correlation_id: cmd.map(|c| c.correlation_id.clone()),
            command: cmd.map(|c| c.command),
            order_id: cmd.and_then(|c| {
                c.order_id
                    .clone()
                    .or_else(|| c.order.as_ref().map(|o| o.id.clone()))
            }),
            accepted: false,
            reason: Some(reason.into()),
            state: None,
            duplicate: false,
            status: Some(ReplyStatus::Rejected),
            response_topic: None,
            correlation_data: None,
        }
    }
}

/// Parses and validates a command payload. The error is the rejection reason, with the
/// correlation id when one could be read.
pub fn parse(payload: &[u8]) -> Result<Command, (Option<String>, String)> {
    if payload.len() > MAX_PAYLOAD {
        return Err((
            None,
            format!("payload over the limit of {MAX_PAYLOAD} bytes"),
        ));
    }
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| (None, format!("not JSON: {e}")))?;
    let correlation_id = value
        .get("correlation_id")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let cmd: Command = serde_json::from_value(value)
        .map_err(|e| (correlation_id.clone(), format!("invalid command: {e}")))?;
    validate(&cmd).map_err(|e| (Some(cmd.correlation_id.clone()), e))?;
    Ok(cmd)
}

fn check_id(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} must be 1 to 64 characters of letters, digits and . _ - : /, found {s:?}"
        ))
    }
}

fn check_text(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.trim().is_empty() || s.len() > max || s.chars().any(char::is_control) {
        Err(format!(
            "{what} must be 1 to {max} characters without control characters"
        ))
    } else {
        Ok(())
    }
}

fn validate(c: &Command) -> Result<(), String> {
    if c.correlation_id.is_empty() || c.correlation_id.len() > 128 {
        return Err("correlation_id must be 1 to 128 characters".into());
    }
    for (key, v) in [("issued_at", &c.issued_at), ("expires_at", &c.expires_at)] {
        if let Some(v) = v {
            instant(v).map_err(|e| format!("{key}: {e}"))?;
        }
    }
    if matches!(
        c.command,
        CommandName::ScrapReason | CommandName::ConsumeMaterial
    ) {
        return validate_actual(c);
    }
    if c.command == CommandName::WriteTag {
        let only = c.order.is_none()
            && c.order_id.is_none()
            && c.reason.is_none()
            && c.quantity.is_none()
            && c.material.is_none();
        return match (&c.tag, &c.value, only) {
            (Some(tag), Some(_), true) => check_text("tag", tag, 128),
            _ => Err("write_tag takes `tag` and `value` only".into()),
        };
    }
    if c.tag.is_some() || c.value.is_some() {
        return Err(format!(
            "{:?} takes no `tag` or `value` (write_tag does)",
            c.command
        ));
    }
    if c.quantity.is_some() || c.material.is_some() {
        return Err(format!(
            "{:?} takes no `quantity` or `material` (scrap_reason and consume_material do)",
            c.command
        ));
    }
    let needs_order = matches!(
        c.command,
        CommandName::Store | CommandName::StoreAndStart | CommandName::Update
    );
    match (&c.order, &c.order_id, needs_order) {
        (Some(o), None, true) => {
            check_id("order.id", &o.id)?;
            check_text("order.material", &o.material, 64)?;
            if o.quantity > 1_000_000_000 {
                return Err(format!(
                    "order.quantity must be at most 1000000000, found {}",
                    o.quantity
                ));
            }
            if let Some(c) = o.ideal_cycle_s {
                if !(c > 0.0 && c <= 86_400.0) {
                    return Err(format!(
                        "order.ideal_cycle_s must be above 0 and at most 86400, found {c}"
                    ));
                }
            }
            if let Some(lot) = &o.lot {
                check_text("order.lot", lot, 64)?;
            }
        }
        (_, _, true) => return Err(format!("{:?} needs `order` (and no `order_id`)", c.command)),
        (None, Some(id), false) if c.command != CommandName::DowntimeReason => {
            check_id("order_id", id)?
        }
        (None, None, false) if c.command == CommandName::DowntimeReason => {}
        (_, _, false) if c.command == CommandName::DowntimeReason => {
            return Err("downtime_reason takes `reason` only".into());
        }
        (_, _, false) => return Err(format!("{:?} needs `order_id` (and no `order`)", c.command)),
    }
    match (&c.reason, c.command) {
        (Some(r), _) => check_text("reason", r, 256)?,
        (None, CommandName::DowntimeReason) => return Err("downtime_reason needs `reason`".into()),
        _ => {}
    }
    Ok(())
}

/// scrap_reason: `reason` and `quantity`; consume_material: `material`; both an optional
/// `order_id`.
fn validate_actual(c: &Command) -> Result<(), String> {
    if c.order.is_some() {
        return Err(format!("{:?} takes `order_id`, not `order`", c.command));
    }
    if let Some(id) = &c.order_id {
        check_id("order_id", id)?;
    }
    if c.command == CommandName::ScrapReason {
        if c.material.is_some() {
            return Err("scrap_reason takes `reason` and `quantity`, not `material`".into());
        }
        let reason = c.reason.as_deref().ok_or("scrap_reason needs `reason`")?;
        check_text("reason", reason, 64)?;
        return match c.quantity {
            None => Err("scrap_reason needs `quantity` (the scrap parts the reason is for)".into()),
            Some(0) => Err("quantity must be at least 1".into()),
            Some(_) => Ok(()),
        };
    }
    if c.quantity.is_some() || c.reason.is_some() {
        return Err(
            "consume_material takes `material` (and `order_id`), not `quantity` or `reason`".into(),
        );
    }
    let m = c.material.as_ref().ok_or(
        "consume_material needs `material`: {\"material\", \"lot\", \"quantity\", \"unit\"}",
    )?;
    check_text("material.material", &m.material, 64)?;
    check_text("material.lot", &m.lot, 64)?;
    check_text("material.unit", &m.unit, 16)?;
    if !(m.quantity > 0.0 && m.quantity <= 1e12) {
        return Err(format!(
            "material.quantity must be above 0 and at most 1e12, found {}",
            m.quantity
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(payload: &str) -> (Option<String>, String) {
        parse(payload.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_store_and_start_parses() {
        let c = parse(br#"{"correlation_id":"c1","command":"store_and_start",
            "order":{"id":"WO-1","material":"BRK-220","quantity":500,"ideal_cycle_s":1.5,"lot":"L7"}}"#)
        .unwrap();
        assert_eq!(c.command, CommandName::StoreAndStart);
        assert_eq!(c.order.unwrap().quantity, 500);
    }

    #[test]
    fn malformed_commands_are_rejected_with_a_reason() {
        assert!(reject("{not json").1.starts_with("not JSON"));
        let (id, why) = reject(r#"{"correlation_id":"c2","command":"pause"}"#);
        assert_eq!(id.as_deref(), Some("c2"));
        assert_eq!(why, "Pause needs `order_id` (and no `order`)");
        let c = parse(
            br#"{"correlation_id":"w1","command":"write_tag","tag":"active_target","value":42}"#,
        )
        .unwrap();
        assert_eq!(
            (c.tag.as_deref(), c.value),
            (Some("active_target"), Some(serde_json::json!(42)))
        );
        assert_eq!(
            reject(r#"{"correlation_id":"w2","command":"write_tag","tag":"t"}"#).1,
            "write_tag takes `tag` and `value` only"
        );
        assert!(
            reject(r#"{"correlation_id":"w3","command":"pause","order_id":"W","tag":"t"}"#)
                .1
                .contains("takes no `tag`")
        );
        assert!(reject(r#"{"command":"pause","order_id":"WO-1"}"#)
            .1
            .contains("missing field `correlation_id`"));
        assert!(
            reject(r#"{"correlation_id":"c3","command":"pause","order_id":7}"#)
                .1
                .contains("invalid type")
        );
        assert!(
            reject(r#"{"correlation_id":"c4","command":"explode","order_id":"x"}"#)
                .1
                .contains("unknown variant")
        );
        let (_, why) = reject(
            r#"{"correlation_id":"c5","command":"store","order":{"id":"WO 1","material":"m"}}"#,
        );
        assert!(why.starts_with("order.id must be"), "{why}");
        let (_, why) = reject(
            r#"{"correlation_id":"c6","command":"store","order":{"id":"W","material":"m","ideal_cycle_s":-1}}"#,
        );
        assert!(why.contains("ideal_cycle_s"), "{why}");
        let big = format!(
            r#"{{"correlation_id":"c7","command":"pause","order_id":"{}"}}"#,
            "x".repeat(MAX_PAYLOAD)
        );
        assert!(reject(&big).1.contains("over the limit"));
        assert!(
            reject(r#"{"correlation_id":"c8","command":"downtime_reason"}"#)
                .1
                .contains("needs `reason`")
        );
        let why = reject(r#"{"correlation_id":"c9","command":"scrap_reason","reason":"burr"}"#).1;
        assert!(why.contains("needs `quantity`"), "{why}");
        let why = reject(
            r#"{"correlation_id":"c10","command":"consume_material","material":{"material":"coil","lot":"L1","quantity":-2}}"#,
        )
        .1;
        assert!(why.contains("material.quantity"), "{why}");
        let why =
            reject(r#"{"correlation_id":"c11","command":"pause","order_id":"W","quantity":2}"#).1;
        assert!(why.contains("takes no `quantity`"), "{why}");
    }

    #[test]
    fn material_and_scrap_commands_parse() {
        let c = parse(br#"{"correlation_id":"m1","command":"consume_material","material":{"material":"DC04 coil","lot":"L-778","quantity":120.5,"unit":"kg"}}"#).unwrap();
        assert_eq!(c.material.unwrap().lot, "L-778");
        let c = parse(br#"{"correlation_id":"s1","command":"scrap_reason","reason":"burr","quantity":2,"order_id":"WO-1"}"#).unwrap();
        assert_eq!((c.quantity, c.reason.as_deref()), (Some(2), Some("burr")));
    }
}
