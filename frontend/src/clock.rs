//! Wall-clock helpers. Token expiries arrive as Unix seconds from the bridge; the browser's
//! clock is the only one the SPA has, so the refresh schedule and the "seconds left" display
//! both read it here.

use web_sys::js_sys::Date;
use web_sys::wasm_bindgen::JsValue;

/// Now, in seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    // `Date::now()` is milliseconds as an f64; whole seconds are plenty for token expiries.
    (Date::now() / 1000.0).floor() as i64
}

/// Renders Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`: unambiguous for people and stable for
/// tests, whatever the browser's locale and time zone.
pub fn format_utc(epoch_secs: i64) -> String {
    let iso =
        String::from(Date::new(&JsValue::from_f64(epoch_secs as f64 * 1000.0)).to_iso_string());
    utc_from_iso(&iso).unwrap_or(iso)
}

/// `2026-11-22T12:34:56.000Z` -> `2026-11-22 12:34:56 UTC`.
fn utc_from_iso(iso: &str) -> Option<String> {
    Some(format!("{} {} UTC", iso.get(..10)?, iso.get(11..19)?))
}

/// "in 287 s" / "expired 12 s ago", for a token expiring at `expires_at`.
pub fn describe_remaining(expires_at: i64, now: i64) -> String {
    let left = expires_at - now;
    if left >= 0 {
        format!("in {left} s")
    } else {
        format!("expired {} s ago", -left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps_become_readable_utc() {
        assert_eq!(
            utc_from_iso("2026-11-22T12:34:56.000Z").as_deref(),
            Some("2026-11-22 12:34:56 UTC")
        );
        assert_eq!(utc_from_iso("garbage"), None);
    }

    #[test]
    fn remaining_time_reads_both_ways() {
        assert_eq!(describe_remaining(130, 100), "in 30 s");
        assert_eq!(describe_remaining(100, 112), "expired 12 s ago");
    }
}
