//! Typed identifiers, so an agent id can never be passed where a host id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (version 4) identifier.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            /// The first eight hexadecimal digits, used in container and profile names.
            pub fn short(&self) -> String {
                self.0.simple().to_string()[..8].to_owned()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

id_type!(
    /// Identifies a host: one machine running the host daemon.
    HostId
);
id_type!(
    /// Identifies an agent: one OpenClaw deployment on one host.
    AgentId
);
id_type!(
    /// Identifies a command queued for a host. Stable across re-deliveries, so the daemon
    /// can recognise a command it has already executed.
    CommandId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_id_is_eight_hex_digits() {
        let id: AgentId = "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap();
        assert_eq!(id.short(), "0f8fad5b");
    }

    #[test]
    fn ids_serialize_as_plain_uuid_strings() {
        let id: HostId = "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"0f8fad5b-d9cb-469f-a165-70867728950e\""
        );
    }
}
