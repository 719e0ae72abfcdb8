//! What went wrong when a driver could not read, write or reach a device, told apart by what
//! can be done about it: wait (transient), fix the config (configuration), or ask the device's
//! owner (refused). The message is what the driver always said; the kind is for logs, the
//! status page and whoever decides whether to try again.

/// What kind of failure a [`DriverError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection was lost, refused or timed out, or the device is away: trying again
    /// later may work.
    Transient,
    /// The request cannot be right for this device (an address it does not have, a value that
    /// does not fit the tag's type, a setting this build or device cannot use): trying again
    /// will not help until the config changes.
    Configuration,
    /// The device answered and said no (a Modbus exception, an OPC UA Bad status, an S7 item
    /// error).
    Refused,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Configuration => "configuration",
            ErrorKind::Refused => "refused",
        }
    }
}

/// A driver's failure: its kind, and the message an engineer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverError {
    pub kind: ErrorKind,
    pub message: String,
}

impl DriverError {
    pub fn transient(message: impl Into<String>) -> Self {
        DriverError {
            kind: ErrorKind::Transient,
            message: message.into(),
        }
    }

    pub fn configuration(message: impl Into<String>) -> Self {
        DriverError {
            kind: ErrorKind::Configuration,
            message: message.into(),
        }
    }

    pub fn refused(message: impl Into<String>) -> Self {
        DriverError {
            kind: ErrorKind::Refused,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DriverError {}
