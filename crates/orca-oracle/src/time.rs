//! Oracle's internal time encoding (`kcvtime`, the "STAMP" of every
//! control-file record, `%t` in RMAN formats).
//!
//! `t = (((((yyyy-1988)*12 + mm-1)*31 + dd-1)*24 + hh)*60 + mi)*60 + ss`:
//! every month counts 31 days, so not every value is a real date.

use chrono::{Datelike, Local, NaiveDate, NaiveDateTime, Timelike};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Errors converting between calendar time and Oracle time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// The date is before 1988 or after the last year a u32 stamp can hold.
    #[error("date {0} cannot be encoded as Oracle time (years 1988..=2121 only)")]
    OutOfRange(String),
    /// The stamp decodes to a day that does not exist (e.g. 31 February).
    #[error("Oracle time {0} does not decode to a real calendar date")]
    InvalidStamp(u32),
}

/// An Oracle time value (seconds in Oracle's 31-day-month calendar since
/// 1988-01-01 00:00:00, local wall-clock time of the database server).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct OracleTime(pub u32);

const FIRST_YEAR: i32 = 1988;
const SECS_PER_YEAR: u64 = 12 * 31 * 24 * 3600;

impl OracleTime {
    /// Encodes a wall-clock date-time. Sub-second precision is dropped.
    pub fn from_datetime(dt: NaiveDateTime) -> Result<OracleTime, TimeError> {
        let year = dt.year();
        if year < FIRST_YEAR {
            return Err(TimeError::OutOfRange(dt.to_string()));
        }
        let years =
            u32::try_from(year - FIRST_YEAR).map_err(|_| TimeError::OutOfRange(dt.to_string()))?;
        let t = ((((u64::from(years) * 12 + u64::from(dt.month0())) * 31 + u64::from(dt.day0()))
            * 24
            + u64::from(dt.hour()))
            * 60
            + u64::from(dt.minute()))
            * 60
            + u64::from(dt.second());
        u32::try_from(t)
            .map(OracleTime)
            .map_err(|_| TimeError::OutOfRange(dt.to_string()))
    }

    /// Decodes to a wall-clock date-time.
    pub fn to_datetime(self) -> Result<NaiveDateTime, TimeError> {
        let mut t = u64::from(self.0);
        let ss = (t % 60) as u32;
        t /= 60;
        let mi = (t % 60) as u32;
        t /= 60;
        let hh = (t % 24) as u32;
        t /= 24;
        let dd = (t % 31) as u32 + 1;
        t /= 31;
        let mm = (t % 12) as u32 + 1;
        t /= 12;
        i32::try_from(t)
            .ok()
            .and_then(|t| FIRST_YEAR.checked_add(t))
            .and_then(|year| NaiveDate::from_ymd_opt(year, mm, dd))
            .and_then(|d| d.and_hms_opt(hh, mi, ss))
            .ok_or(TimeError::InvalidStamp(self.0))
    }

    /// The current local time as an Oracle time. Falls back to 0 only if the
    /// clock is outside 1988..=2121, which no supported system reports.
    pub fn now() -> OracleTime {
        OracleTime::from_datetime(Local::now().naive_local()).unwrap_or_default()
    }

    /// Seconds in one Oracle "year" (12 months of 31 days).
    pub const SECS_PER_YEAR: u64 = SECS_PER_YEAR;
}

impl fmt::Display for OracleTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn published_examples() {
        assert_eq!(
            OracleTime::from_datetime(dt("2015-07-26 21:47:02")).unwrap(),
            OracleTime(886110422)
        );
        assert_eq!(
            OracleTime::from_datetime(dt("2017-03-10 09:30:55")).unwrap(),
            OracleTime(938251855)
        );
        assert_eq!(
            OracleTime(879492872).to_datetime().unwrap(),
            dt("2015-05-12 07:34:32")
        );
    }

    #[test]
    fn out_of_range_and_invalid() {
        assert!(OracleTime::from_datetime(dt("1987-12-31 23:59:59")).is_err());
        assert!(OracleTime::from_datetime(dt("2200-01-01 00:00:00")).is_err());
        // 31 February 1988 exists in Oracle's calendar but not in chrono's.
        let feb31 = ((31 + 30) * 24) * 3600;
        assert_eq!(
            OracleTime(feb31).to_datetime(),
            Err(TimeError::InvalidStamp(feb31))
        );
    }

    proptest! {
        #[test]
        fn roundtrip(secs in 0i64..(100 * 365 * 86400)) {
            let base = dt("1988-01-01 00:00:00");
            let t = base + chrono::Duration::seconds(secs);
            let o = OracleTime::from_datetime(t).unwrap();
            prop_assert_eq!(o.to_datetime().unwrap(), t);
        }

        #[test]
        fn monotonic(a in 0i64..(50 * 365 * 86400), d in 0i64..1_000_000) {
            let base = dt("1990-01-01 00:00:00");
            let t1 = base + chrono::Duration::seconds(a);
            let t2 = t1 + chrono::Duration::seconds(d);
            prop_assert!(OracleTime::from_datetime(t1).unwrap() <= OracleTime::from_datetime(t2).unwrap());
        }
    }
}
