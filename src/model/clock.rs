//! The wall clock as entries see it: local time with its UTC offset, as Go's `time.Now()`
//! carries its location (Promtail's dry-run output prints that offset).

use chrono::{DateTime, FixedOffset, Local};

pub fn now() -> DateTime<FixedOffset> {
    Local::now().fixed_offset()
}
