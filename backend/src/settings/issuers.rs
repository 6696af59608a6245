//! `[[issuers]]`: more issuers whose JWTs the API accepts. Their type and its compilation live
//! with the trust engine (`crate::trust::issuer`); here, the checks across entries.

use crate::trust::issuer::{IssuerSettings, IssuerSpec};

/// Every entry compiled (keys read, algorithms parsed, patterns built); an issuer configured
/// twice is a problem.
pub(super) fn compile(entries: &[IssuerSettings], problems: &mut Vec<String>) -> Vec<IssuerSpec> {
    let mut issuers = Vec::with_capacity(entries.len());
    let mut seen = std::collections::HashSet::new();
    for entry in entries {
        match IssuerSpec::compile(entry) {
            Ok(spec) => {
                if !seen.insert(spec.issuer.clone()) {
                    problems.push(format!("issuers: {} is configured twice", spec.issuer));
                }
                issuers.push(spec);
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    issuers
}
