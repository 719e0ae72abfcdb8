//! Node-RED as a plant would set it up for the same job: per device a modbus-client config node
//! and one modbus-read node per register block (node-red-contrib-modbus), each feeding a
//! function node that decodes the block's tags and emits a message per changed tag, into the
//! built-in MQTT out node (QoS 1). The flow is generated from the workload; Node-RED runs
//! headless (no editor, no HTTP nodes) with its user folder in the run's folder.

use crate::ctx::Ctx;
use crate::procs::{free_port, Proc};
use crate::workload::PeerSpec;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

/// The function node of one block: decode, compare with the last values, emit the changes.
fn decoder(device: &str, root: &str, tags: &[(String, u16, &'static str)]) -> String {
    let tags = serde_json::to_string(tags).unwrap();
    format!(
        r#"const tags = {tags};
const regs = msg.payload;
const last = context.get('last') || {{}};
const out = [];
const ts = Date.now();
const buf = Buffer.alloc(4);
for (const [name, off, kind] of tags) {{
    let v;
    if (kind === 'u16') v = regs[off];
    else if (kind === 'u32') v = regs[off] * 65536 + regs[off + 1];
    else {{ buf.writeUInt16BE(regs[off], 0); buf.writeUInt16BE(regs[off + 1], 2); v = buf.readFloatBE(0); }}
    if (last[name] !== v) {{
        last[name] = v;
        out.push({{ topic: '{root}/{device}/' + name, payload: JSON.stringify({{ tag: name, value: v, ts: ts }}) }});
    }}
}}
context.set('last', last);
return [out];"#
    )
}

pub fn flows(spec: &PeerSpec) -> Value {
    let mut nodes = vec![
        json!({"id": "tab", "type": "tab", "label": "mes-edge bench"}),
        json!({
            "id": "broker", "type": "mqtt-broker", "name": "bench broker",
            "broker": "127.0.0.1", "port": spec.mqtt_port.to_string(), "clientid": "bench-node-red",
            "autoConnect": true, "usetls": false, "protocolVersion": 4, "keepalive": "60",
            "cleansession": true, "autoUnsubscribe": true,
            "birthTopic": "", "closeTopic": "", "willTopic": "", "userProps": "", "sessionExpiry": ""
        }),
        json!({
            "id": "publish", "type": "mqtt out", "z": "tab", "name": "to MOM", "topic": "",
            "qos": "1", "retain": "false", "respTopic": "", "contentType": "", "userProps": "",
            "correl": "", "expiry": "", "broker": "broker", "x": 700, "y": 100, "wires": []
        }),
    ];
    for (d, dev) in spec.devices.iter().enumerate() {
        let client = format!("client{d}");
        nodes.push(json!({
            "id": client, "type": "modbus-client", "name": dev.name, "clienttype": "tcp",
            "bufferCommands": true, "stateLogEnabled": false, "queueLogEnabled": false,
            "failureLogEnabled": false, "tcpHost": "127.0.0.1", "tcpPort": dev.port.to_string(),
            "tcpType": "DEFAULT", "serialPort": "/dev/ttyUSB", "serialType": "RTU-BUFFERD",
            "serialBaudrate": "9600", "serialDatabits": "8", "serialStopbits": "1",
            "serialParity": "none", "serialConnectionDelay": "100",
            "serialAsciiResponseStartDelimiter": "0x3A", "unit_id": "1", "commandDelay": "1",
            "clientTimeout": "1000", "reconnectOnTimeout": true, "reconnectTimeout": "2000",
            "parallelUnitIdsAllowed": true
        }));
        for (b, block) in dev.blocks.iter().enumerate() {
            let (read, decode) = (format!("read{d}_{b}"), format!("decode{d}_{b}"));
            let y = 40 + 40 * (d * dev.blocks.len() + b);
            nodes.push(json!({
                "id": read, "type": "modbus-read", "z": "tab", "name": format!("{} @{}", dev.name, block.addr),
                "topic": "", "showStatusActivities": false, "logIOActivities": false, "showErrors": false,
                "unitid": "1", "dataType": "HoldingRegister", "adr": block.addr.to_string(),
                "quantity": block.count.to_string(), "rate": spec.poll_ms.to_string(), "rateUnit": "ms",
                "delayOnStart": false, "startDelayTime": "", "server": client, "useIOFile": false,
                "ioFile": "", "useIOForPayload": false, "emptyMsgOnFail": false,
                "x": 150, "y": y, "wires": [[decode], []]
            }));
            nodes.push(json!({
                "id": decode, "type": "function", "z": "tab", "name": "changes",
                "func": decoder(&dev.name, &spec.topic_root, &block.tags), "outputs": 1,
                "noerr": 0, "initialize": "", "finalize": "", "libs": [],
                "x": 400, "y": y, "wires": [["publish"]]
            }));
        }
    }
    Value::Array(nodes)
}

pub fn start(ctx: &Ctx, dir: &Path, spec: &PeerSpec) -> Result<Proc> {
    let home = ctx
        .node_red
        .as_ref()
        .context("Node-RED is not installed: run bench/run")?;
    let user = dir.join("node-red-user");
    std::fs::create_dir_all(&user)?;
    std::fs::write(
        user.join("flows.json"),
        serde_json::to_string_pretty(&flows(spec))?,
    )?;
    // Headless, as on a line-side PC once the flow is deployed: no editor, no HTTP endpoints.
    let settings = format!(
        "module.exports = {{\n  flowFile: 'flows.json',\n  uiHost: '127.0.0.1',\n  uiPort: {port},\n  \
         httpAdminRoot: false,\n  httpNodeRoot: false,\n  credentialSecret: false,\n  \
         diagnostics: {{ enabled: false, ui: false }},\n  runtimeState: {{ enabled: false, ui: false }},\n  \
         telemetry: {{ enabled: false }},\n  \
         logging: {{ console: {{ level: 'info', metrics: false, audit: false }} }},\n}};\n",
        port = free_port()
    );
    let settings_path = user.join("settings.js");
    std::fs::write(&settings_path, settings)?;
    let mut cmd = Command::new("node");
    cmd.arg(home.join("node_modules/node-red/red.js"))
        .arg("--settings")
        .arg(&settings_path)
        .arg("--userDir")
        .arg(&user);
    Proc::spawn("node-red", cmd, dir, false)
}
