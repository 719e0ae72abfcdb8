//! `mes-edge demo --sparkplug`: one line per Sparkplug B message, decoded as a host would.

use crate::sparkplug::proto::{payload::metric::Value, Payload};
use crate::sparkplug::NODE_METRICS;
use prost::Message;

/// The demo's cell as a Sparkplug B edge node, beside its JSON events.
pub const SECTION: &str = "\n[sparkplug]\nenabled = true\n";

/// `NDATA press4: Production/Good Total = 12`.
pub fn describe(topic: &str, payload: &[u8]) -> String {
    let levels: Vec<&str> = topic.split('/').collect();
    let (kind, node) = (
        levels.get(2).copied().unwrap_or("?"),
        &levels[3.min(levels.len() - 1)..],
    );
    let Ok(p) = Payload::decode(payload) else {
        return format!("{topic}: not a Sparkplug B payload");
    };
    let metrics: Vec<String> = p
        .metrics
        .iter()
        .map(|m| {
            let name = m.name.clone().unwrap_or_else(|| match m.alias {
                Some(a) if (a as usize) < NODE_METRICS.len() => {
                    NODE_METRICS[a as usize].name.into()
                }
                Some(a) => format!("alias {a}"),
                None => "?".into(),
            });
            let value = match &m.value {
                Some(Value::LongValue(v)) => v.to_string(),
                Some(Value::IntValue(v)) => v.to_string(),
                Some(Value::DoubleValue(v)) => format!("{v:.3}"),
                Some(Value::FloatValue(v)) => format!("{v:.3}"),
                Some(Value::BooleanValue(v)) => v.to_string(),
                Some(Value::StringValue(v)) if v.chars().count() > 60 => {
                    format!("{}…", v.chars().take(60).collect::<String>())
                }
                Some(Value::StringValue(v)) => v.clone(),
                _ => "null".into(),
            };
            let history = if m.is_historical == Some(true) {
                " (history)"
            } else {
                ""
            };
            format!("{name} = {value}{history}")
        })
        .collect();
    let seq = p.seq.map(|s| format!(" seq {s}")).unwrap_or_default();
    let shown = if metrics.len() > 4 {
        format!("{} metrics: {}, …", metrics.len(), metrics[..4].join(", "))
    } else {
        metrics.join(", ")
    };
    format!("spBv1.0 {kind} {}{seq}: {shown}", node.join("/"))
}
