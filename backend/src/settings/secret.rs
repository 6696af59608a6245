//! A secret read from configuration (the provider's client secret, a store URL with its
//! password): it never shows in `Debug` output, logs or serialized settings.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret read from configuration. `Debug` and `Serialize` never show it.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    /// Masked, but an absent secret stays visibly absent: the defaults pass through
    /// serialization on their way into the configuration, and a masked empty secret must not
    /// turn into a configured one.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "***" })
    }
}
