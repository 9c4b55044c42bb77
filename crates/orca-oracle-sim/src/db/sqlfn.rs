//! Oracle SQL functions on SQLite: `SYSDATE`, `TO_CHAR`, `TO_DATE`,
//! `TO_NUMBER`, `NVL`, `NVL2`, `DECODE`, `TRUNC`, `ROUND`, `LPAD`, `RPAD`,
//! `MOD`, `ADD_MONTHS`, `GREATEST`, `LEAST`, plus the `sim_*` helpers the
//! views use. Registered on every control-file connection.
//!
//! Oracle `DATE` values are stored as Julian day numbers (REAL). A REAL in
//! the Julian range of years 1900..2200 is treated as a date where the type
//! is otherwise unknown (e.g. `TO_CHAR(x)` without a format).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};
use orca_oracle::OracleTime;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Error as SqlError};
use std::sync::{Arc, Mutex};

/// Default `NLS_DATE_FORMAT`.
pub const DEFAULT_NLS_DATE_FORMAT: &str = "DD-MON-RR";

/// Session settings the functions read (`ALTER SESSION SET ...`).
#[derive(Clone, Debug)]
pub struct NlsSettings {
    /// `NLS_DATE_FORMAT`.
    pub date_format: String,
}

impl Default for NlsSettings {
    fn default() -> Self {
        NlsSettings {
            date_format: std::env::var("NLS_DATE_FORMAT")
                .ok()
                .filter(|f| !f.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_NLS_DATE_FORMAT.to_string()),
        }
    }
}

/// Shared handle to the session's NLS settings.
pub type Nls = Arc<Mutex<NlsSettings>>;

const JD_UNIX_EPOCH: f64 = 2_440_587.5;
const JD_1900: f64 = 2_415_020.5;
const JD_2200: f64 = 2_524_593.5;

/// Julian day number of a wall-clock date-time.
pub fn julian(dt: NaiveDateTime) -> f64 {
    dt.and_utc().timestamp() as f64 / 86_400.0 + JD_UNIX_EPOCH
}

/// Wall-clock date-time of a Julian day number (rounded to the second).
pub fn from_julian(j: f64) -> Option<NaiveDateTime> {
    if !j.is_finite() {
        return None;
    }
    let secs = ((j - JD_UNIX_EPOCH) * 86_400.0).round();
    if secs.abs() > 1e13 {
        return None;
    }
    DateTime::from_timestamp(secs as i64, 0).map(|d| d.naive_utc())
}

/// Julian day of an Oracle STAMP (0 if the stamp is not a real date).
pub fn julian_of_stamp(t: OracleTime) -> f64 {
    t.to_datetime().map(julian).unwrap_or(0.0)
}

/// Whether a REAL looks like a date stored by the simulator.
pub fn is_date_like(v: f64) -> bool {
    (JD_1900..=JD_2200).contains(&v)
}

/// The current local wall-clock time, truncated to the second.
pub fn now_local() -> NaiveDateTime {
    let n = chrono::Local::now().naive_local();
    n.with_nanosecond(0).unwrap_or(n)
}

/// Oracle's canonical text of a number (`TO_CHAR(n)`, SQL*Plus CSV):
/// no trailing zeros, no leading zero before the decimal point.
pub fn number_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let s = format!("{v}");
    if let Some(r) = s.strip_prefix("0.") {
        format!(".{r}")
    } else if let Some(r) = s.strip_prefix("-0.") {
        format!("-.{r}")
    } else {
        s
    }
}

const MONTHS: [&str; 12] = [
    "JANUARY",
    "FEBRUARY",
    "MARCH",
    "APRIL",
    "MAY",
    "JUNE",
    "JULY",
    "AUGUST",
    "SEPTEMBER",
    "OCTOBER",
    "NOVEMBER",
    "DECEMBER",
];
const DAYS: [&str; 7] = [
    "SUNDAY",
    "MONDAY",
    "TUESDAY",
    "WEDNESDAY",
    "THURSDAY",
    "FRIDAY",
    "SATURDAY",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Upper,
    Capital,
    Lower,
}

fn case_of(token: &str) -> Case {
    let mut it = token.chars().filter(|c| c.is_ascii_alphabetic());
    match (it.next(), it.next()) {
        (Some(a), Some(b)) if a.is_ascii_uppercase() && b.is_ascii_lowercase() => Case::Capital,
        (Some(a), _) if a.is_ascii_lowercase() => Case::Lower,
        _ => Case::Upper,
    }
}

fn apply_case(s: &str, c: Case) -> String {
    match c {
        Case::Upper => s.to_ascii_uppercase(),
        Case::Lower => s.to_ascii_lowercase(),
        Case::Capital => {
            let lower = s.to_ascii_lowercase();
            let mut ch = lower.chars();
            ch.next()
                .map(|f| f.to_ascii_uppercase().to_string() + ch.as_str())
                .unwrap_or_default()
        }
    }
}

/// One element of a date format model.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Elem {
    Lit(String),
    Fm,
    Yyyy,
    Yyy,
    Yy,
    Y,
    Rrrr,
    Rr,
    Mm,
    Mon(String),
    Month(String),
    Dd,
    Ddd,
    D,
    Dy(String),
    Day(String),
    Hh24,
    Hh12,
    Mi,
    Ss,
    Sssss,
    Ff,
    Am(String),
    J,
    Q,
}

fn tokenize_date_format(fmt: &str) -> Result<Vec<Elem>, String> {
    let mut out = Vec::new();
    let b = fmt.as_bytes();
    let mut i = 0;
    let upper = fmt.to_ascii_uppercase();
    let u = upper.as_bytes();
    // Longest tokens first.
    const TOKENS: &[&str] = &[
        "SSSSS", "MONTH", "YYYY", "RRRR", "HH24", "HH12", "A.M.", "P.M.", "YYY", "MON", "DDD",
        "DAY", "FF9", "FF6", "FF3", "YY", "RR", "MM", "DD", "DY", "HH", "MI", "SS", "AM", "PM",
        "FM", "FF", "Y", "D", "J", "Q",
    ];
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            let end = fmt[i + 1..]
                .find('"')
                .map(|e| i + 1 + e)
                .ok_or("ORA-01861: literal does not match format string")?;
            out.push(Elem::Lit(fmt[i + 1..end].to_string()));
            i = end + 1;
            continue;
        }
        if !c.is_ascii_alphanumeric() {
            let ch = fmt[i..].chars().next().unwrap_or(' ');
            out.push(Elem::Lit(ch.to_string()));
            i += ch.len_utf8();
            continue;
        }
        let tok = TOKENS
            .iter()
            .find(|t| u[i..].starts_with(t.as_bytes()))
            .ok_or_else(|| "ORA-01821: date format not recognized".to_string())?;
        let orig = &fmt[i..i + tok.len()];
        let e = match *tok {
            "SSSSS" => Elem::Sssss,
            "MONTH" => Elem::Month(orig.to_string()),
            "YYYY" => Elem::Yyyy,
            "RRRR" => Elem::Rrrr,
            "HH24" => Elem::Hh24,
            "HH12" | "HH" => Elem::Hh12,
            "A.M." | "P.M." | "AM" | "PM" => Elem::Am(orig.to_string()),
            "YYY" => Elem::Yyy,
            "MON" => Elem::Mon(orig.to_string()),
            "DDD" => Elem::Ddd,
            "DAY" => Elem::Day(orig.to_string()),
            "FF9" | "FF6" | "FF3" | "FF" => Elem::Ff,
            "YY" => Elem::Yy,
            "RR" => Elem::Rr,
            "MM" => Elem::Mm,
            "DD" => Elem::Dd,
            "DY" => Elem::Dy(orig.to_string()),
            "MI" => Elem::Mi,
            "SS" => Elem::Ss,
            "FM" => Elem::Fm,
            "Y" => Elem::Y,
            "D" => Elem::D,
            "J" => Elem::J,
            _ => Elem::Q,
        };
        out.push(e);
        i += tok.len();
    }
    Ok(out)
}

/// Formats a date with an Oracle format model (`YYYY-MM-DD HH24:MI:SS`,
/// `DD-MON-RR`, `FMMonth DD, YYYY`, ...).
pub fn format_date(dt: NaiveDateTime, fmt: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut fill = true;
    for e in tokenize_date_format(fmt)? {
        let num = |v: i64, w: usize, fill: bool| {
            if fill {
                format!("{v:0w$}")
            } else {
                v.to_string()
            }
        };
        let h12 = match dt.hour() % 12 {
            0 => 12,
            h => h,
        };
        let s = match e {
            Elem::Lit(l) => l,
            Elem::Fm => {
                fill = !fill;
                String::new()
            }
            Elem::Yyyy | Elem::Rrrr => num(i64::from(dt.year()), 4, fill),
            Elem::Yyy => num(i64::from(dt.year() % 1000), 3, true),
            Elem::Yy | Elem::Rr => num(i64::from(dt.year() % 100), 2, true),
            Elem::Y => (dt.year() % 10).to_string(),
            Elem::Mm => num(i64::from(dt.month()), 2, fill),
            Elem::Mon(t) => apply_case(&MONTHS[dt.month0() as usize][..3], case_of(&t)),
            Elem::Month(t) => {
                let m = apply_case(MONTHS[dt.month0() as usize], case_of(&t));
                if fill { format!("{m:<9}") } else { m }
            }
            Elem::Dd => num(i64::from(dt.day()), 2, fill),
            Elem::Ddd => num(i64::from(dt.ordinal()), 3, fill),
            Elem::D => (dt.weekday().num_days_from_sunday() + 1).to_string(),
            Elem::Dy(t) => apply_case(
                &DAYS[dt.weekday().num_days_from_sunday() as usize][..3],
                case_of(&t),
            ),
            Elem::Day(t) => {
                let d = apply_case(
                    DAYS[dt.weekday().num_days_from_sunday() as usize],
                    case_of(&t),
                );
                if fill { format!("{d:<9}") } else { d }
            }
            Elem::Hh24 => num(i64::from(dt.hour()), 2, fill),
            Elem::Hh12 => num(i64::from(h12), 2, fill),
            Elem::Mi => num(i64::from(dt.minute()), 2, fill),
            Elem::Ss => num(i64::from(dt.second()), 2, fill),
            Elem::Sssss => num(i64::from(dt.num_seconds_from_midnight()), 5, fill),
            Elem::Ff => "000000".to_string(),
            Elem::Am(t) => {
                let pm = dt.hour() >= 12;
                let dotted = t.contains('.');
                let s = match (pm, dotted) {
                    (false, false) => "AM",
                    (true, false) => "PM",
                    (false, true) => "A.M.",
                    (true, true) => "P.M.",
                };
                apply_case(s, case_of(&t))
            }
            Elem::J => ((julian(dt) + 0.5).floor() as i64).to_string(),
            Elem::Q => (dt.month0() / 3 + 1).to_string(),
        };
        out.push_str(&s);
    }
    Ok(out)
}

fn take_digits(s: &str, max: usize) -> (Option<i64>, &str) {
    let s = s.trim_start();
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let n = body
        .bytes()
        .take(max)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if n == 0 {
        return (None, s);
    }
    let v: i64 = body[..n].parse().unwrap_or(0);
    (Some(if neg { -v } else { v }), &body[n..])
}

fn take_name<'a>(s: &'a str, names: &[&str], abbrev: bool) -> Option<(usize, &'a str)> {
    let up = s.trim_start().to_ascii_uppercase();
    let st = s.trim_start();
    for (i, n) in names.iter().enumerate() {
        let n: &str = if abbrev { &n[..3] } else { n };
        if up.starts_with(n) {
            return Some((i, &st[n.len()..]));
        }
    }
    None
}

/// Parses a date with an Oracle format model. Fields not in the format take
/// Oracle's defaults (current year and month, day 1, midnight).
pub fn parse_date(text: &str, fmt: &str) -> Result<NaiveDateTime, String> {
    let now = now_local();
    let (mut y, mut mo, mut d) = (now.year() as i64, i64::from(now.month()), 1i64);
    let (mut h, mut mi, mut s) = (0i64, 0i64, 0i64);
    let mut pm: Option<bool> = None;
    let mut rest = text;
    let bad = || "ORA-01858: a non-numeric character was found where a numeric was expected";
    for e in tokenize_date_format(fmt)? {
        match e {
            Elem::Lit(l) => {
                let t = rest.trim_start();
                if l.trim().is_empty() {
                    rest = t;
                } else if let Some(r) = t.strip_prefix(l.as_str()) {
                    rest = r;
                } else if !t.is_empty() && !t.starts_with(|c: char| c.is_ascii_alphanumeric()) {
                    // Oracle accepts any punctuation where punctuation is expected.
                    rest = &t[t.chars().next().map_or(0, char::len_utf8)..];
                } else {
                    return Err("ORA-01861: literal does not match format string".into());
                }
            }
            Elem::Fm | Elem::Ff => {}
            Elem::Yyyy | Elem::Rrrr | Elem::Yyy | Elem::Y | Elem::Yy | Elem::Rr => {
                let max = match e {
                    Elem::Yyyy | Elem::Rrrr => 4,
                    Elem::Yyy => 3,
                    Elem::Y => 1,
                    _ => 2,
                };
                let (v, r) = take_digits(rest, max);
                let v = v.ok_or_else(bad)?;
                let consumed = rest.trim_start().len() - r.len();
                y = match e {
                    Elem::Rr | Elem::Rrrr if consumed <= 2 => {
                        if v < 50 {
                            2000 + v
                        } else {
                            1900 + v
                        }
                    }
                    Elem::Yy if consumed <= 2 => (now.year() as i64 / 100) * 100 + v,
                    _ => v,
                };
                rest = r;
            }
            Elem::Mm => {
                let (v, r) = take_digits(rest, 2);
                mo = v.ok_or_else(bad)?;
                rest = r;
            }
            Elem::Mon(_) | Elem::Month(_) => {
                let full = matches!(e, Elem::Month(_));
                let (i, r) = take_name(rest, &MONTHS, false)
                    .filter(|_| full)
                    .or_else(|| take_name(rest, &MONTHS, true))
                    .ok_or("ORA-01843: not a valid month")?;
                mo = i as i64 + 1;
                rest = r;
            }
            Elem::Dd => {
                let (v, r) = take_digits(rest, 2);
                d = v.ok_or_else(bad)?;
                rest = r;
            }
            Elem::Ddd => {
                let (v, r) = take_digits(rest, 3);
                let v = v.ok_or_else(bad)?;
                mo = 1;
                d = v;
                rest = r;
            }
            Elem::D => {
                let (_, r) = take_digits(rest, 1);
                rest = r;
            }
            Elem::Dy(_) | Elem::Day(_) => {
                let (_, r) = take_name(rest, &DAYS, matches!(e, Elem::Dy(_)))
                    .or_else(|| take_name(rest, &DAYS, true))
                    .ok_or("ORA-01846: not a valid day of the week")?;
                rest = r;
            }
            Elem::Hh24 | Elem::Hh12 => {
                let (v, r) = take_digits(rest, 2);
                h = v.ok_or_else(bad)?;
                rest = r;
            }
            Elem::Mi => {
                let (v, r) = take_digits(rest, 2);
                mi = v.ok_or_else(bad)?;
                rest = r;
            }
            Elem::Ss => {
                let (v, r) = take_digits(rest, 2);
                s = v.ok_or_else(bad)?;
                rest = r;
            }
            Elem::Sssss => {
                let (v, r) = take_digits(rest, 5);
                let v = v.ok_or_else(bad)?;
                h = v / 3600;
                mi = (v / 60) % 60;
                s = v % 60;
                rest = r;
            }
            Elem::Am(_) => {
                let t = rest.trim_start().to_ascii_uppercase();
                let (is_pm, n) = if t.starts_with("P.M.") {
                    (true, 4)
                } else if t.starts_with("A.M.") {
                    (false, 4)
                } else if t.starts_with("PM") {
                    (true, 2)
                } else if t.starts_with("AM") {
                    (false, 2)
                } else {
                    return Err("ORA-01855: AM/A.M. or PM/P.M. required".into());
                };
                pm = Some(is_pm);
                rest = &rest.trim_start()[n..];
            }
            Elem::J => {
                let (v, r) = take_digits(rest, 8);
                let v = v.ok_or_else(bad)?;
                let dt = from_julian(v as f64 - 0.5)
                    .ok_or("ORA-01854: julian date must be between 1 and 5373484")?;
                y = i64::from(dt.year());
                mo = i64::from(dt.month());
                d = i64::from(dt.day());
                rest = r;
            }
            Elem::Q => {
                let (_, r) = take_digits(rest, 1);
                rest = r;
            }
        }
    }
    if !rest.trim().is_empty() {
        return Err(
            "ORA-01830: date format picture ends before converting entire input string".into(),
        );
    }
    if let Some(p) = pm {
        if !(1..=12).contains(&h) {
            return Err("ORA-01849: hour must be between 1 and 12".into());
        }
        h = (h % 12) + if p { 12 } else { 0 };
    }
    if !(1..=12).contains(&mo) {
        return Err("ORA-01843: not a valid month".into());
    }
    if !(0..24).contains(&h) {
        return Err("ORA-01850: hour must be between 0 and 23".into());
    }
    if !(0..60).contains(&mi) {
        return Err("ORA-01851: minutes must be between 0 and 59".into());
    }
    if !(0..60).contains(&s) {
        return Err("ORA-01852: seconds must be between 0 and 59".into());
    }
    let first = NaiveDate::from_ymd_opt(y as i32, mo as u32, 1)
        .ok_or("ORA-01841: (full) year must be between -4713 and +9999, and not be 0")?;
    let date = first
        .checked_add_signed(Duration::days(d - 1))
        .filter(|nd| {
            d >= 1 && (nd.month() == mo as u32 || fmt.to_ascii_uppercase().contains("DDD"))
        })
        .ok_or("ORA-01847: day of month must be between 1 and last day of month")?;
    date.and_hms_opt(h as u32, mi as u32, s as u32)
        .ok_or_else(|| "ORA-01839: date not valid for month specified".to_string())
}

/// Formats a number with an Oracle number format model (`999,990.00`,
/// `FM9999`, `0000`). Returns `#` characters when the value does not fit.
pub fn format_number(v: f64, fmt: &str) -> String {
    let up = fmt.to_ascii_uppercase();
    let fm = up.starts_with("FM");
    let model = if fm { &up[2..] } else { &up[..] };
    let (int_part, frac_part) = model.split_once(['.', 'D']).unwrap_or((model, ""));
    let frac_digits = frac_part.chars().filter(|c| *c == '9' || *c == '0').count();
    let int_slots = int_part.chars().filter(|c| *c == '9' || *c == '0').count();
    let zero_from = int_part
        .chars()
        .filter(|c| *c == '9' || *c == '0')
        .position(|c| c == '0')
        .map(|p| int_slots - p);
    let rounded = format!("{:.*}", frac_digits, v.abs());
    let (digits_int, digits_frac) = rounded.split_once('.').unwrap_or((&rounded, ""));
    let mut digits_int = digits_int.trim_start_matches('0').to_string();
    if let Some(z) = zero_from
        && digits_int.len() < z
    {
        digits_int = format!("{digits_int:0>z$}");
    }
    if digits_int.is_empty() && frac_digits == 0 {
        digits_int = "0".into();
    }
    let width = model.len() + 1;
    if digits_int.len() > int_slots {
        return "#".repeat(width);
    }
    // Lay the integer digits into the model from the right, keeping commas
    // only between digits.
    let mut int_out = String::new();
    let mut di = digits_int.chars().rev().peekable();
    for c in int_part.chars().rev() {
        match c {
            '9' | '0' => {
                if let Some(d) = di.next() {
                    int_out.insert(0, d);
                }
            }
            ',' | 'G' if di.peek().is_some() => {
                int_out.insert(0, ',');
            }
            _ => {}
        }
    }
    let mut s = String::new();
    if v < 0.0 && rounded.chars().any(|c| c.is_ascii_digit() && c != '0') {
        s.push('-');
    }
    s.push_str(&int_out);
    if frac_digits > 0 {
        s.push('.');
        s.push_str(digits_frac);
    }
    if fm { s } else { format!("{s:>width$}") }
}

fn arg_f64(ctx: &Context<'_>, i: usize) -> rusqlite::Result<Option<f64>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(v) => Some(v as f64),
        ValueRef::Real(v) => Some(v),
        ValueRef::Text(t) => {
            let s = String::from_utf8_lossy(t);
            Some(
                s.trim()
                    .parse::<f64>()
                    .map_err(|_| SqlError::UserFunctionError("ORA-01722: invalid number".into()))?,
            )
        }
        ValueRef::Blob(_) => {
            return Err(SqlError::UserFunctionError(
                "ORA-00932: inconsistent datatypes: expected NUMBER got BINARY".into(),
            ));
        }
    })
}

fn arg_text(ctx: &Context<'_>, i: usize) -> Option<String> {
    match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(v) => Some(v.to_string()),
        ValueRef::Real(v) => Some(number_text(v)),
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Some(hex_upper(b)),
    }
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn owned(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn user_err(msg: impl Into<String>) -> SqlError {
    SqlError::UserFunctionError(msg.into().into())
}

fn values_equal(a: ValueRef<'_>, b: ValueRef<'_>) -> bool {
    match (a, b) {
        (ValueRef::Null, _) | (_, ValueRef::Null) => false,
        (ValueRef::Integer(x), ValueRef::Integer(y)) => x == y,
        (ValueRef::Integer(x), ValueRef::Real(y)) | (ValueRef::Real(y), ValueRef::Integer(x)) => {
            x as f64 == y
        }
        (ValueRef::Real(x), ValueRef::Real(y)) => x == y,
        (ValueRef::Text(x), ValueRef::Text(y)) => x == y,
        (ValueRef::Text(t), ValueRef::Integer(n)) | (ValueRef::Integer(n), ValueRef::Text(t)) => {
            String::from_utf8_lossy(t).trim().parse::<i64>().ok() == Some(n)
        }
        (ValueRef::Blob(x), ValueRef::Blob(y)) => x == y,
        _ => false,
    }
}

fn trunc_date(dt: NaiveDateTime, fmt: &str) -> Result<NaiveDateTime, String> {
    let d = dt.date();
    let start = match fmt.trim().to_ascii_uppercase().as_str() {
        "" | "DD" | "DDD" | "J" => d,
        "MM" | "MON" | "MONTH" => d.with_day(1).unwrap_or(d),
        "YYYY" | "YEAR" | "YY" | "Y" | "RR" | "RRRR" => {
            NaiveDate::from_ymd_opt(d.year(), 1, 1).unwrap_or(d)
        }
        "Q" => NaiveDate::from_ymd_opt(d.year(), d.month0() / 3 * 3 + 1, 1).unwrap_or(d),
        "HH" | "HH24" | "HH12" => {
            return Ok(d.and_hms_opt(dt.hour(), 0, 0).unwrap_or(dt));
        }
        "MI" => return Ok(d.and_hms_opt(dt.hour(), dt.minute(), 0).unwrap_or(dt)),
        "D" | "DY" | "DAY" => d - Duration::days(i64::from(d.weekday().num_days_from_sunday())),
        other => return Err(format!("ORA-01899: bad precision specifier ({other})")),
    };
    Ok(start.and_hms_opt(0, 0, 0).unwrap_or(dt))
}

fn add_months(dt: NaiveDateTime, n: i64) -> Option<NaiveDateTime> {
    let total = i64::from(dt.year()) * 12 + i64::from(dt.month0()) + n;
    let (y, m0) = (total.div_euclid(12), total.rem_euclid(12));
    let first = NaiveDate::from_ymd_opt(y as i32, m0 as u32 + 1, 1)?;
    let next = NaiveDate::from_ymd_opt(
        if m0 == 11 { y as i32 + 1 } else { y as i32 },
        if m0 == 11 { 1 } else { m0 as u32 + 2 },
        1,
    )?;
    let last_day = (next - first).num_days() as u32;
    let orig_last = {
        let f = dt.date().with_day(1)?;
        let nx = if dt.month() == 12 {
            NaiveDate::from_ymd_opt(dt.year() + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(dt.year(), dt.month() + 1, 1)?
        };
        (nx - f).num_days() as u32
    };
    let day = if dt.day() == orig_last {
        last_day
    } else {
        dt.day().min(last_day)
    };
    Some(first.with_day(day)?.and_time(dt.time()))
}

/// Registers the Oracle functions on `conn`. `local_instance` is the value
/// of `sim_local_instance()` (the instance `v$instance` shows).
pub fn register(conn: &Connection, nls: Nls, local_instance: i64) -> rusqlite::Result<()> {
    let det = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let nondet = FunctionFlags::SQLITE_UTF8;

    conn.create_scalar_function("sysdate", 0, nondet, |_| Ok(julian(now_local())))?;
    conn.create_scalar_function("systimestamp", 0, nondet, |_| Ok(julian(now_local())))?;
    conn.create_scalar_function("sim_local_instance", 0, det, move |_| Ok(local_instance))?;
    conn.create_scalar_function("sim_size_display", 1, det, |ctx| {
        Ok(arg_f64(ctx, 0)?.map(size_display))
    })?;
    conn.create_scalar_function("sim_time_display", 1, det, |ctx| {
        Ok(arg_f64(ctx, 0)?.map(|s| {
            let s = s.max(0.0) as u64;
            format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
        }))
    })?;
    conn.create_scalar_function("sim_file_size", 1, nondet, |ctx| {
        Ok(arg_text(ctx, 0)
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len() as i64))
    })?;

    let nls_tc = nls.clone();
    conn.create_scalar_function("to_char", -1, det, move |ctx| {
        if ctx.is_empty() || ctx.len() > 3 {
            return Err(user_err("ORA-00909: invalid number of arguments"));
        }
        let fmt = if ctx.len() >= 2 {
            arg_text(ctx, 1)
        } else {
            None
        };
        match ctx.get_raw(0) {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => Ok(Some(String::from_utf8_lossy(t).into_owned())),
            ValueRef::Blob(b) => Ok(Some(hex_upper(b))),
            ValueRef::Integer(i) => Ok(Some(match fmt {
                Some(f) if looks_like_date_format(&f) && is_date_like(i as f64) => {
                    let dt = from_julian(i as f64).ok_or_else(|| user_err("ORA-01841"))?;
                    format_date(dt, &f).map_err(user_err)?
                }
                Some(f) => format_number(i as f64, &f),
                None => i.to_string(),
            })),
            ValueRef::Real(r) => {
                let date_fmt = match &fmt {
                    Some(f) => looks_like_date_format(f),
                    None => is_date_like(r),
                };
                if date_fmt {
                    let dt = from_julian(r).ok_or_else(|| user_err("ORA-01841: invalid date"))?;
                    let f = fmt.unwrap_or_else(|| {
                        nls_tc
                            .lock()
                            .map(|n| n.date_format.clone())
                            .unwrap_or_else(|_| DEFAULT_NLS_DATE_FORMAT.into())
                    });
                    Ok(Some(format_date(dt, &f).map_err(user_err)?))
                } else {
                    Ok(Some(match fmt {
                        Some(f) => format_number(r, &f),
                        None => number_text(r),
                    }))
                }
            }
        }
    })?;

    let nls_td = nls;
    conn.create_scalar_function("to_date", -1, det, move |ctx| {
        if ctx.is_empty() || ctx.len() > 3 {
            return Err(user_err("ORA-00909: invalid number of arguments"));
        }
        match ctx.get_raw(0) {
            ValueRef::Null => Ok(None),
            ValueRef::Real(r) if ctx.len() == 1 => Ok(Some(r)),
            _ => {
                let text = arg_text(ctx, 0).unwrap_or_default();
                let fmt = if ctx.len() >= 2 {
                    arg_text(ctx, 1).unwrap_or_default()
                } else {
                    nls_td
                        .lock()
                        .map(|n| n.date_format.clone())
                        .unwrap_or_else(|_| DEFAULT_NLS_DATE_FORMAT.into())
                };
                let dt = parse_date(&text, &fmt).map_err(user_err)?;
                Ok(Some(julian(dt)))
            }
        }
    })?;
    conn.create_scalar_function("to_number", -1, det, |ctx| {
        if ctx.is_empty() {
            return Err(user_err("ORA-00909: invalid number of arguments"));
        }
        match ctx.get_raw(0) {
            ValueRef::Null => Ok(Value::Null),
            ValueRef::Integer(i) => Ok(Value::Integer(i)),
            ValueRef::Real(r) => Ok(Value::Real(r)),
            _ => {
                let t = arg_text(ctx, 0).unwrap_or_default().replace(',', "");
                let t = t.trim();
                if let Ok(i) = t.parse::<i64>() {
                    Ok(Value::Integer(i))
                } else {
                    t.parse::<f64>()
                        .map(Value::Real)
                        .map_err(|_| user_err("ORA-01722: invalid number"))
                }
            }
        }
    })?;
    conn.create_scalar_function("nvl", 2, det, |ctx| {
        let a = ctx.get_raw(0);
        Ok(if a == ValueRef::Null {
            owned(ctx.get_raw(1))
        } else {
            owned(a)
        })
    })?;
    conn.create_scalar_function("nvl2", 3, det, |ctx| {
        Ok(if ctx.get_raw(0) == ValueRef::Null {
            owned(ctx.get_raw(2))
        } else {
            owned(ctx.get_raw(1))
        })
    })?;
    conn.create_scalar_function("decode", -1, det, |ctx| {
        if ctx.len() < 3 {
            return Err(user_err("ORA-00938: not enough arguments for function"));
        }
        let e = ctx.get_raw(0);
        let mut i = 1;
        while i + 1 < ctx.len() {
            let s = ctx.get_raw(i);
            // DECODE treats NULL = NULL as a match, unlike `=`.
            if values_equal(e, s) || (e == ValueRef::Null && s == ValueRef::Null) {
                return Ok(owned(ctx.get_raw(i + 1)));
            }
            i += 2;
        }
        Ok(if i < ctx.len() {
            owned(ctx.get_raw(i))
        } else {
            Value::Null
        })
    })?;
    conn.create_scalar_function("trunc", -1, det, |ctx| {
        if ctx.is_empty() || ctx.len() > 2 {
            return Err(user_err("ORA-00909: invalid number of arguments"));
        }
        let Some(v) = arg_f64(ctx, 0)? else {
            return Ok(Value::Null);
        };
        let fmt_text = if ctx.len() == 2 {
            arg_text(ctx, 1)
        } else {
            None
        };
        let is_date = matches!(ctx.get_raw(0), ValueRef::Real(_)) && is_date_like(v)
            || fmt_text
                .as_deref()
                .is_some_and(|f| f.trim().parse::<f64>().is_err());
        if is_date {
            let dt = from_julian(v).ok_or_else(|| user_err("ORA-01841: invalid date"))?;
            let t = trunc_date(dt, fmt_text.as_deref().unwrap_or("DD")).map_err(user_err)?;
            return Ok(Value::Real(julian(t)));
        }
        let places = fmt_text
            .and_then(|f| f.trim().parse::<i32>().ok())
            .unwrap_or(0);
        let m = 10f64.powi(places);
        let r = (v * m).trunc() / m;
        Ok(if places <= 0 {
            Value::Integer(r as i64)
        } else {
            Value::Real(r)
        })
    })?;
    conn.create_scalar_function("round", -1, det, |ctx| {
        if ctx.is_empty() || ctx.len() > 2 {
            return Err(user_err("ORA-00909: invalid number of arguments"));
        }
        let Some(v) = arg_f64(ctx, 0)? else {
            return Ok(Value::Null);
        };
        let arg2 = if ctx.len() == 2 {
            arg_text(ctx, 1)
        } else {
            None
        };
        if matches!(ctx.get_raw(0), ValueRef::Real(_))
            && is_date_like(v)
            && arg2
                .as_deref()
                .is_none_or(|f| f.trim().parse::<f64>().is_err())
        {
            // ROUND(date) to the day is TRUNC(date + 12 hours).
            let shifted =
                from_julian(v + 0.5).ok_or_else(|| user_err("ORA-01841: invalid date"))?;
            let t = trunc_date(shifted, arg2.as_deref().unwrap_or("DD")).map_err(user_err)?;
            return Ok(Value::Real(julian(t)));
        }
        let places = arg2.and_then(|f| f.trim().parse::<i32>().ok()).unwrap_or(0);
        let m = 10f64.powi(places);
        // Oracle rounds half away from zero.
        let r = (v * m).round() / m;
        Ok(if places <= 0 {
            Value::Integer(r as i64)
        } else {
            Value::Real(r)
        })
    })?;
    for (name, left) in [("lpad", true), ("rpad", false)] {
        conn.create_scalar_function(name, -1, det, move |ctx| {
            if ctx.len() < 2 || ctx.len() > 3 {
                return Err(user_err("ORA-00909: invalid number of arguments"));
            }
            let (Some(s), Some(n)) = (arg_text(ctx, 0), arg_f64(ctx, 1)?) else {
                return Ok(None);
            };
            let pad = if ctx.len() == 3 {
                arg_text(ctx, 2).unwrap_or_default()
            } else {
                " ".into()
            };
            let n = n.max(0.0) as usize;
            let chars: Vec<char> = s.chars().collect();
            if chars.len() >= n || pad.is_empty() {
                return Ok(Some(chars.into_iter().take(n).collect::<String>()));
            }
            let fill: String = pad.chars().cycle().take(n - chars.len()).collect();
            Ok(Some(if left { fill + &s } else { s + &fill }))
        })?;
    }
    conn.create_scalar_function("mod", 2, det, |ctx| {
        match (ctx.get_raw(0), ctx.get_raw(1)) {
            (ValueRef::Integer(a), ValueRef::Integer(b)) => {
                Ok(Value::Integer(if b == 0 { a } else { a % b }))
            }
            _ => {
                let (Some(a), Some(b)) = (arg_f64(ctx, 0)?, arg_f64(ctx, 1)?) else {
                    return Ok(Value::Null);
                };
                Ok(Value::Real(if b == 0.0 {
                    a
                } else {
                    a - b * (a / b).trunc()
                }))
            }
        }
    })?;
    for (name, f) in [("ceil", f64::ceil as fn(f64) -> f64), ("floor", f64::floor)] {
        conn.create_scalar_function(name, 1, det, move |ctx| {
            Ok(arg_f64(ctx, 0)?.map(|v| f(v) as i64))
        })?;
    }
    conn.create_scalar_function("power", 2, det, |ctx| {
        Ok(match (arg_f64(ctx, 0)?, arg_f64(ctx, 1)?) {
            (Some(a), Some(b)) => Some(a.powf(b)),
            _ => None,
        })
    })?;
    conn.create_scalar_function("sign", 1, det, |ctx| {
        Ok(arg_f64(ctx, 0)?.map(|v| {
            if v > 0.0 {
                1
            } else if v < 0.0 {
                -1
            } else {
                0
            }
        }))
    })?;
    for (name, greatest) in [("greatest", true), ("least", false)] {
        conn.create_scalar_function(name, -1, det, move |ctx| {
            let mut best: Option<Value> = None;
            for i in 0..ctx.len() {
                let v = owned(ctx.get_raw(i));
                if v == Value::Null {
                    return Ok(Value::Null);
                }
                best = Some(match best {
                    None => v,
                    Some(b) => {
                        let take = match compare_values(&v, &b) {
                            Some(std::cmp::Ordering::Greater) => greatest,
                            Some(std::cmp::Ordering::Less) => !greatest,
                            _ => false,
                        };
                        if take { v } else { b }
                    }
                });
            }
            Ok(best.unwrap_or(Value::Null))
        })?;
    }
    conn.create_scalar_function("add_months", 2, det, |ctx| {
        let (Some(d), Some(n)) = (arg_f64(ctx, 0)?, arg_f64(ctx, 1)?) else {
            return Ok(None);
        };
        let dt = from_julian(d).ok_or_else(|| user_err("ORA-01841: invalid date"))?;
        Ok(add_months(dt, n as i64).map(julian))
    })?;
    conn.create_scalar_function("last_day", 1, det, |ctx| {
        let Some(d) = arg_f64(ctx, 0)? else {
            return Ok(None);
        };
        let dt = from_julian(d).ok_or_else(|| user_err("ORA-01841: invalid date"))?;
        let first = dt.date().with_day(1).unwrap_or(dt.date());
        Ok(add_months(first.and_time(dt.time()), 1).map(|n| julian(n) - 1.0))
    })?;
    Ok(())
}

fn compare_values(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    let num = |v: &Value| match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Real(r) => Some(*r),
        _ => None,
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => match (a, b) {
            (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
            _ => None,
        },
    }
}

fn looks_like_date_format(f: &str) -> bool {
    let u = f.to_ascii_uppercase();
    [
        "YY", "RR", "MM", "MON", "DD", "HH", "MI", "SS", "DY", "DAY", "J", "Q",
    ]
    .iter()
    .any(|t| u.contains(t))
        && !u.contains('9')
}

/// `SIZE_BYTES_DISPLAY` text: right-aligned, two decimals, unit K/M/G/T.
pub fn size_display(bytes: f64) -> String {
    let units = ["", "K", "M", "G", "T", "P"];
    let mut v = bytes.max(0.0);
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:>7.2}{}", units[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn julian_roundtrip() {
        let t = dt("2026-03-04 09:17:14");
        assert_eq!(from_julian(julian(t)), Some(t));
        assert!(is_date_like(julian(t)));
        assert_eq!(julian(dt("2000-01-01 12:00:00")), 2_451_545.0);
    }

    #[test]
    fn date_formats() {
        let t = dt("2026-03-04 09:17:14");
        assert_eq!(format_date(t, "DD-MON-RR").unwrap(), "04-MAR-26");
        assert_eq!(
            format_date(t, "YYYY-MM-DD HH24:MI:SS").unwrap(),
            "2026-03-04 09:17:14"
        );
        assert_eq!(format_date(t, "Mon DD, YYYY").unwrap(), "Mar 04, 2026");
        assert_eq!(format_date(t, "FMMonth DD").unwrap(), "March 4");
        assert_eq!(format_date(t, "MONTH").unwrap(), "MARCH    ");
        assert_eq!(format_date(t, "HH:MI AM DY").unwrap(), "09:17 AM WED");
        assert_eq!(
            format_date(t, "\"T\"YYYYMMDD\"T\"HH24MISS").unwrap(),
            "T20260304T091714"
        );
        assert!(format_date(t, "XX").is_err());
    }

    #[test]
    fn date_parse() {
        assert_eq!(
            parse_date("2026-03-04 09:17:14", "YYYY-MM-DD HH24:MI:SS").unwrap(),
            dt("2026-03-04 09:17:14")
        );
        assert_eq!(
            parse_date("04-MAR-26", "DD-MON-RR").unwrap(),
            dt("2026-03-04 00:00:00")
        );
        assert_eq!(
            parse_date("04/03/2026 9:05 pm", "DD/MM/YYYY HH:MI AM").unwrap(),
            dt("2026-03-04 21:05:00")
        );
        assert!(parse_date("31-FEB-26", "DD-MON-RR").is_err());
        assert!(parse_date("2026-13-01", "YYYY-MM-DD").is_err());
        assert!(parse_date("2026-01-01 junk", "YYYY-MM-DD").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(number_text(0.5), ".5");
        assert_eq!(number_text(-0.25), "-.25");
        assert_eq!(number_text(12.0), "12");
        assert_eq!(format_number(1234.5, "999,990.00"), "   1,234.50");
        assert_eq!(format_number(5.0, "FM0000"), "0005");
        assert_eq!(format_number(123456.0, "999"), "####");
        assert_eq!(format_number(0.5, "990.99"), "   0.50");
        assert_eq!(size_display(1536.0 * 1024.0), "   1.50M");
    }

    #[test]
    fn sql_functions() {
        let c = Connection::open_in_memory().unwrap();
        register(&c, Arc::new(Mutex::new(NlsSettings::default())), 1).unwrap();
        let q = |sql: &str| -> String {
            c.query_row(sql, [], |r| {
                Ok(match r.get_ref(0)? {
                    ValueRef::Null => "NULL".to_string(),
                    ValueRef::Integer(i) => i.to_string(),
                    ValueRef::Real(f) => number_text(f),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Blob(_) => "BLOB".into(),
                })
            })
            .unwrap()
        };
        assert_eq!(
            q(
                "select to_char(to_date('2026-03-04 09:17:14','YYYY-MM-DD HH24:MI:SS'), 'DD-MON-RR HH24:MI')"
            ),
            "04-MAR-26 09:17"
        );
        assert_eq!(
            q("select to_char(to_date('2026-03-04 09:17:14','YYYY-MM-DD HH24:MI:SS'))"),
            "04-MAR-26"
        );
        assert_eq!(
            q(
                "select to_char(trunc(to_date('2026-03-04 09:17:14','YYYY-MM-DD HH24:MI:SS'),'MM'),'YYYY-MM-DD HH24:MI:SS')"
            ),
            "2026-03-01 00:00:00"
        );
        assert_eq!(
            q("select to_char(to_date('2026-03-04','YYYY-MM-DD') + 1, 'YYYY-MM-DD')"),
            "2026-03-05"
        );
        assert_eq!(q("select nvl(null, 'x')"), "x");
        assert_eq!(q("select decode(2, 1, 'one', 2, 'two', 'many')"), "two");
        assert_eq!(q("select decode(9, 1, 'one', 'many')"), "many");
        assert_eq!(q("select decode(null, null, 'null!', 'x')"), "null!");
        assert_eq!(q("select round(2.456, 2)"), "2.46");
        assert_eq!(q("select trunc(2.9)"), "2");
        assert_eq!(q("select lpad('7', 3, '0')"), "007");
        assert_eq!(q("select to_number('42')"), "42");
        assert_eq!(q("select mod(7, 3)"), "1");
        assert_eq!(q("select greatest(1, 5, 3)"), "5");
        assert_eq!(q("select to_char(1234.5, '999,990.00')"), "   1,234.50");
        assert_eq!(
            q("select to_char(add_months(to_date('2026-01-31','YYYY-MM-DD'), 1), 'YYYY-MM-DD')"),
            "2026-02-28"
        );
        assert!(
            c.query_row("select to_date('x', 'YYYY')", [], |_| Ok(()))
                .is_err()
        );
        assert!(sysdate_close(&c));
    }

    fn sysdate_close(c: &Connection) -> bool {
        let v: f64 = c.query_row("select sysdate()", [], |r| r.get(0)).unwrap();
        (v - julian(now_local())).abs() < 1.0 / 1440.0
    }
}
