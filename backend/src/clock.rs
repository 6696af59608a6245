//! Wall-clock time in the unit every token uses: seconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, read straight off the system clock (no calendar date is
/// built: this runs several times on every API call).
pub fn now() -> i64 {
    let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => secs(since),
        // A clock set before 1970: negative, as `OffsetDateTime::unix_timestamp` gives it.
        Err(before) => -secs(before.duration()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_is_the_unix_timestamp_of_the_time_crate() {
        let ours = super::now();
        let theirs = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!((theirs - ours).abs() <= 1, "{ours} vs {theirs}");
    }
}
