//! Oracle date format models (NLS_DATE_FORMAT, TO_DATE) and the SQL date expressions RMAN
//! accepts in `SINCE TIME` / `UNTIL TIME` ('SYSDATE-1', "to_date('...','...')", ...).

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const MONTH_NAMES: [&str; 12] = [
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

/// RMAN's default display format when NLS_DATE_FORMAT is not set.
pub const DEFAULT_NLS_DATE_FORMAT: &str = "DD-MON-YY";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Elem {
    Year4,
    Year2,
    Month,
    MonthAbbr,
    MonthName,
    Day,
    Hour24,
    Hour12,
    Minute,
    Second,
    Meridian,
    Lit(String),
}

/// A parsed Oracle date format model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat {
    elems: Vec<Elem>,
}

impl DateFormat {
    /// Parses a model such as `YYYY-MM-DD HH24:MI:SS` or `DD-MON-YY`.
    pub fn parse(model: &str) -> Result<Self, String> {
        let up = model.to_ascii_uppercase();
        let b = up.as_bytes();
        let mut i = 0;
        let mut elems = Vec::new();
        let table: &[(&str, Elem)] = &[
            ("YYYY", Elem::Year4),
            ("RRRR", Elem::Year4),
            ("HH24", Elem::Hour24),
            ("HH12", Elem::Hour12),
            ("MONTH", Elem::MonthName),
            ("MON", Elem::MonthAbbr),
            ("YY", Elem::Year2),
            ("RR", Elem::Year2),
            ("MM", Elem::Month),
            ("DD", Elem::Day),
            ("HH", Elem::Hour12),
            ("MI", Elem::Minute),
            ("SS", Elem::Second),
            ("AM", Elem::Meridian),
            ("PM", Elem::Meridian),
        ];
        'outer: while i < b.len() {
            if b[i] == b'"' {
                let end = up[i + 1..]
                    .find('"')
                    .ok_or_else(|| format!("unterminated quoted text in date format {model:?}"))?;
                elems.push(Elem::Lit(model[i + 1..i + 1 + end].to_string()));
                i += end + 2;
                continue;
            }
            for (k, e) in table {
                if up[i..].starts_with(k) {
                    elems.push(e.clone());
                    i += k.len();
                    continue 'outer;
                }
            }
            let c = model[i..].chars().next().unwrap_or(' ');
            if c.is_ascii_alphanumeric() {
                return Err(format!(
                    "date format {model:?} has an unknown element at {:?}",
                    &model[i..]
                ));
            }
            elems.push(Elem::Lit(c.to_string()));
            i += c.len_utf8();
        }
        Ok(Self { elems })
    }

    /// The format from NLS_DATE_FORMAT, or RMAN's default.
    pub fn from_env() -> Self {
        std::env::var("NLS_DATE_FORMAT")
            .ok()
            .and_then(|f| Self::parse(f.trim().trim_matches(['"', '\''])).ok())
            .unwrap_or_else(|| Self::parse(DEFAULT_NLS_DATE_FORMAT).expect("valid default"))
    }

    /// Renders a date.
    pub fn format(&self, t: NaiveDateTime) -> String {
        let mut s = String::new();
        for e in &self.elems {
            match e {
                Elem::Year4 => s.push_str(&format!("{:04}", t.year())),
                Elem::Year2 => s.push_str(&format!("{:02}", t.year() % 100)),
                Elem::Month => s.push_str(&format!("{:02}", t.month())),
                Elem::MonthAbbr => s.push_str(MONTHS[t.month0() as usize]),
                Elem::MonthName => s.push_str(&format!("{:<9}", MONTH_NAMES[t.month0() as usize])),
                Elem::Day => s.push_str(&format!("{:02}", t.day())),
                Elem::Hour24 => s.push_str(&format!("{:02}", t.hour())),
                Elem::Hour12 => {
                    let h = t.hour() % 12;
                    s.push_str(&format!("{:02}", if h == 0 { 12 } else { h }));
                }
                Elem::Minute => s.push_str(&format!("{:02}", t.minute())),
                Elem::Second => s.push_str(&format!("{:02}", t.second())),
                Elem::Meridian => s.push_str(if t.hour() < 12 { "AM" } else { "PM" }),
                Elem::Lit(l) => s.push_str(l),
            }
        }
        s
    }

    /// Parses text written in this format (TO_DATE semantics: missing parts default to the
    /// first day of the current month at midnight).
    pub fn parse_date(&self, text: &str, now: NaiveDateTime) -> Result<NaiveDateTime, String> {
        let bad = || format!("date {text:?} does not match its format");
        let mut rest = text.trim();
        let (mut y, mut mo, mut d) = (now.year(), now.month(), 1u32);
        let (mut h, mut mi, mut sec) = (0u32, 0u32, 0u32);
        let mut pm = None;
        let num = |rest: &mut &str, max_digits: usize| -> Option<u32> {
            let n = rest
                .bytes()
                .take(max_digits)
                .take_while(u8::is_ascii_digit)
                .count();
            if n == 0 {
                return None;
            }
            let v = rest[..n].parse().ok()?;
            *rest = &rest[n..];
            Some(v)
        };
        for e in &self.elems {
            match e {
                Elem::Year4 => y = num(&mut rest, 4).ok_or_else(bad)? as i32,
                Elem::Year2 => {
                    let v = num(&mut rest, 2).ok_or_else(bad)? as i32;
                    y = if v < 50 { 2000 + v } else { 1900 + v };
                }
                Elem::Month => mo = num(&mut rest, 2).ok_or_else(bad)?,
                Elem::MonthAbbr | Elem::MonthName => {
                    let upper = rest.to_ascii_uppercase();
                    let idx = MONTHS
                        .iter()
                        .position(|m| upper.starts_with(m))
                        .ok_or_else(bad)?;
                    let full = MONTH_NAMES[idx];
                    let len = if *e == Elem::MonthName && upper.starts_with(full) {
                        full.len()
                    } else {
                        3
                    };
                    rest = &rest[len..];
                    mo = idx as u32 + 1;
                }
                Elem::Day => d = num(&mut rest, 2).ok_or_else(bad)?,
                Elem::Hour24 | Elem::Hour12 => h = num(&mut rest, 2).ok_or_else(bad)?,
                Elem::Minute => mi = num(&mut rest, 2).ok_or_else(bad)?,
                Elem::Second => sec = num(&mut rest, 2).ok_or_else(bad)?,
                Elem::Meridian => {
                    let upper = rest.to_ascii_uppercase();
                    pm = Some(upper.starts_with("PM"));
                    if !(upper.starts_with("AM") || upper.starts_with("PM")) {
                        return Err(bad());
                    }
                    rest = &rest[2..];
                }
                Elem::Lit(l) => {
                    let lt = l.trim();
                    rest = rest.trim_start();
                    if !lt.is_empty() {
                        rest = rest.strip_prefix(lt).ok_or_else(bad)?;
                    }
                }
            }
        }
        if !rest.trim().is_empty() {
            return Err(bad());
        }
        if let Some(pm) = pm {
            h = (h % 12) + if pm { 12 } else { 0 };
        }
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|dt| dt.and_hms_opt(h, mi, sec))
            .ok_or_else(|| format!("date {text:?} is not a valid calendar date"))
    }
}

/// RMAN-03002/03009 print times as `MM/DD/YYYY HH24:MI:SS` whatever NLS_DATE_FORMAT says.
pub fn error_stamp(t: NaiveDateTime) -> String {
    t.format("%m/%d/%Y %H:%M:%S").to_string()
}

/// `HH:MM:SS` of an elapsed time.
pub fn elapsed(secs: i64) -> String {
    let s = secs.max(0);
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

#[derive(Debug, Clone, Copy)]
enum Val {
    Date(NaiveDateTime),
    Num(f64),
}

struct Expr<'a> {
    s: &'a str,
    i: usize,
    now: NaiveDateTime,
    nls: &'a DateFormat,
}

impl<'a> Expr<'a> {
    fn ws(&mut self) {
        while self.s[self.i..].starts_with(char::is_whitespace) {
            self.i += self.s[self.i..].chars().next().map_or(1, char::len_utf8);
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(c) {
            self.i += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> Option<String> {
        self.ws();
        let n = self.s[self.i..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
            .count();
        if n == 0 {
            return None;
        }
        let w = self.s[self.i..self.i + n].to_string();
        self.i += n;
        Some(w)
    }

    fn string(&mut self) -> Result<String, String> {
        self.ws();
        if !self.s[self.i..].starts_with('\'') {
            return Err("expected a quoted string".into());
        }
        let rest = &self.s[self.i + 1..];
        let end = rest.find('\'').ok_or("unterminated string")?;
        self.i += end + 2;
        Ok(rest[..end].to_string())
    }

    fn expr(&mut self) -> Result<Val, String> {
        let mut v = self.term()?;
        loop {
            if self.eat('+') {
                v = add(v, self.term()?, 1.0)?;
            } else if self.eat('-') {
                v = add(v, self.term()?, -1.0)?;
            } else {
                return Ok(v);
            }
        }
    }

    fn term(&mut self) -> Result<Val, String> {
        let mut v = self.factor()?;
        loop {
            if self.eat('*') {
                let r = self.factor()?;
                v = Val::Num(num(v)? * num(r)?);
            } else if self.eat('/') {
                let r = num(self.factor()?)?;
                if r == 0.0 {
                    return Err("division by zero".into());
                }
                v = Val::Num(num(v)? / r);
            } else {
                return Ok(v);
            }
        }
    }

    fn factor(&mut self) -> Result<Val, String> {
        self.ws();
        if self.eat('(') {
            let v = self.expr()?;
            if !self.eat(')') {
                return Err("missing )".into());
            }
            return Ok(v);
        }
        if self.s[self.i..].starts_with('\'') {
            let s = self.string()?;
            return Ok(Val::Date(parse_literal(&s, self.now, self.nls)?));
        }
        let w = self.word().ok_or("expected a date expression")?;
        if let Ok(n) = w.parse::<f64>() {
            return Ok(Val::Num(n));
        }
        match w.to_ascii_uppercase().as_str() {
            "SYSDATE" | "CURRENT_DATE" | "SYSTIMESTAMP" => Ok(Val::Date(self.now)),
            "TO_DATE" => {
                if !self.eat('(') {
                    return Err("TO_DATE needs (".into());
                }
                let text = self.string()?;
                let fmt = if self.eat(',') {
                    DateFormat::parse(&self.string()?)?
                } else {
                    self.nls.clone()
                };
                if !self.eat(')') {
                    return Err("missing ) after TO_DATE".into());
                }
                Ok(Val::Date(fmt.parse_date(&text, self.now)?))
            }
            "TRUNC" => {
                if !self.eat('(') {
                    return Err("TRUNC needs (".into());
                }
                let v = self.expr()?;
                let unit = if self.eat(',') {
                    self.string()?.to_ascii_uppercase()
                } else {
                    "DD".into()
                };
                if !self.eat(')') {
                    return Err("missing ) after TRUNC".into());
                }
                let Val::Date(d) = v else {
                    return Ok(Val::Num(num(v)?.trunc()));
                };
                let day = d.date().and_hms_opt(0, 0, 0).expect("midnight");
                Ok(Val::Date(match unit.as_str() {
                    "HH" | "HH24" => d.date().and_hms_opt(d.hour(), 0, 0).expect("hour"),
                    "MM" | "MON" | "MONTH" => NaiveDate::from_ymd_opt(d.year(), d.month(), 1)
                        .and_then(|x| x.and_hms_opt(0, 0, 0))
                        .expect("first of month"),
                    _ => day,
                }))
            }
            other => Err(format!("unknown identifier {other} in date expression")),
        }
    }
}

fn num(v: Val) -> Result<f64, String> {
    match v {
        Val::Num(n) => Ok(n),
        Val::Date(_) => Err("a date cannot be multiplied or divided".into()),
    }
}

fn add(a: Val, b: Val, sign: f64) -> Result<Val, String> {
    match (a, b) {
        (Val::Date(d), Val::Num(n)) => Ok(Val::Date(
            d + Duration::milliseconds((n * sign * 86_400_000.0) as i64),
        )),
        (Val::Num(n), Val::Date(d)) if sign > 0.0 => Ok(Val::Date(
            d + Duration::milliseconds((n * 86_400_000.0) as i64),
        )),
        (Val::Num(x), Val::Num(y)) => Ok(Val::Num(x + sign * y)),
        _ => Err("dates cannot be added together".into()),
    }
}

fn parse_literal(s: &str, now: NaiveDateTime, nls: &DateFormat) -> Result<NaiveDateTime, String> {
    if let Ok(d) = nls.parse_date(s, now) {
        return Ok(d);
    }
    for f in [
        "YYYY-MM-DD HH24:MI:SS",
        "YYYY-MM-DD:HH24:MI:SS",
        "YYYY-MM-DD\"T\"HH24:MI:SS",
        "YYYY-MM-DD",
        "DD-MON-YYYY HH24:MI:SS",
        "DD-MON-YY",
        "DD-MON-YYYY",
    ] {
        if let Ok(d) = DateFormat::parse(f)
            .expect("valid builtin format")
            .parse_date(s, now)
        {
            return Ok(d);
        }
    }
    Err(format!("{s:?} is not a date in format {nls:?}"))
}

/// Evaluates the text of a `TIME '...'` operand.
pub fn eval_time(
    text: &str,
    now: NaiveDateTime,
    nls: &DateFormat,
) -> Result<NaiveDateTime, String> {
    let mut e = Expr {
        s: text,
        i: 0,
        now,
        nls,
    };
    match e.expr() {
        Ok(Val::Date(d)) => {
            e.ws();
            if e.i == text.len() {
                return Ok(d);
            }
            parse_literal(text, now, nls)
        }
        _ => parse_literal(text, now, nls),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 22)
            .unwrap()
            .and_hms_opt(10, 30, 15)
            .unwrap()
    }

    #[test]
    fn formats() {
        let f = DateFormat::parse("DD-MON-YY").unwrap();
        assert_eq!(f.format(now()), "22-NOV-26");
        let f = DateFormat::parse("YYYY-MM-DD HH24:MI:SS").unwrap();
        assert_eq!(f.format(now()), "2026-11-22 10:30:15");
        assert_eq!(f.parse_date("2026-11-22 10:30:15", now()).unwrap(), now());
        assert_eq!(error_stamp(now()), "11/22/2026 10:30:15");
        assert_eq!(elapsed(3725), "01:02:05");
    }

    #[test]
    fn expressions() {
        let nls = DateFormat::parse(DEFAULT_NLS_DATE_FORMAT).unwrap();
        assert_eq!(
            eval_time("SYSDATE-1", now(), &nls).unwrap(),
            now() - Duration::days(1)
        );
        assert_eq!(
            eval_time("sysdate - 1/24", now(), &nls).unwrap(),
            now() - Duration::hours(1)
        );
        assert_eq!(
            eval_time(
                "to_date('2026-11-22 10:00:00','YYYY-MM-DD HH24:MI:SS')",
                now(),
                &nls
            )
            .unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 22)
                .unwrap()
                .and_hms_opt(10, 0, 0)
                .unwrap()
        );
        assert_eq!(
            eval_time("TRUNC(SYSDATE)", now(), &nls).unwrap(),
            now().date().and_hms_opt(0, 0, 0).unwrap()
        );
        assert_eq!(
            eval_time("2026-11-21 08:00:00", now(), &nls).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 21)
                .unwrap()
                .and_hms_opt(8, 0, 0)
                .unwrap()
        );
        assert_eq!(
            eval_time("21-NOV-26", now(), &nls).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 21)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
        );
        assert!(eval_time("yesterday", now(), &nls).is_err());
        assert!(eval_time("SYSDATE + SYSDATE", now(), &nls).is_err());
    }
}
