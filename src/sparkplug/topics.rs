//! The Sparkplug B topic namespace: `spBv1.0/{group_id}/{message_type}/{edge_node_id}[/{device_id}]`.

#[derive(Debug, Clone)]
pub struct Topics {
    pub group: String,
    pub node: String,
}

pub const NAMESPACE: &str = "spBv1.0";

impl Topics {
    /// NBIRTH, NDEATH, NDATA, NCMD.
    pub fn node(&self, message: &str) -> String {
        format!("{NAMESPACE}/{}/{message}/{}", self.group, self.node)
    }

    /// DBIRTH, DDEATH, DDATA, DCMD; `+` for every device.
    pub fn device(&self, message: &str, device: &str) -> String {
        format!(
            "{NAMESPACE}/{}/{message}/{}/{device}",
            self.group, self.node
        )
    }

    /// The primary host application's state, retained by the broker.
    pub fn state(host_id: &str) -> String {
        format!("{NAMESPACE}/STATE/{host_id}")
    }

    /// The device a DCMD topic names, if it is one of this node's.
    pub fn device_of<'t>(&self, topic: &'t str) -> Option<&'t str> {
        topic.strip_prefix(&self.device("DCMD", ""))
    }
}
