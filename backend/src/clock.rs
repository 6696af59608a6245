//! Wall-clock time in the unit every token uses: seconds since the Unix epoch.

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
