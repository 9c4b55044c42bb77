//! SQL*Plus result formatting: column widths from declared types, headings
//! (truncated for text, right-aligned for numbers), underlines, pages,
//! wrapping at LINESIZE, feedback lines, and `SET MARKUP CSV ON`.

use crate::db::sqlfn::{format_date, format_number, from_julian, is_date_like, number_text};
use rusqlite::types::Value;
use std::collections::HashMap;

/// `COLUMN` settings for one column.
#[derive(Clone, Debug, Default)]
pub struct ColumnCmd {
    /// `FORMAT a20` → Some(Text(20)); `FORMAT 999,990` → Some(Number(model)).
    pub format: Option<ColumnFormat>,
    /// `HEADING 'text'`.
    pub heading: Option<String>,
    /// `NOPRINT`.
    pub noprint: bool,
}

/// A COLUMN FORMAT.
#[derive(Clone, Debug)]
pub enum ColumnFormat {
    /// `An`: text width.
    Text(usize),
    /// A number model (`999,990.00`).
    Number(String),
}

/// The SET options that affect output.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `SET MARKUP CSV ON`.
    pub csv: bool,
    /// CSV delimiter.
    pub csv_delimiter: String,
    /// CSV quoting of strings.
    pub csv_quote: bool,
    /// `SET HEADING`.
    pub heading: bool,
    /// `SET FEEDBACK`: None = off, Some(n) = report when at least n rows.
    pub feedback: Option<u64>,
    /// `SET PAGESIZE`.
    pub pagesize: u64,
    /// `SET LINESIZE`.
    pub linesize: usize,
    /// `SET COLSEP`.
    pub colsep: String,
    /// `SET NUMWIDTH`.
    pub numwidth: usize,
    /// `SET NULL`.
    pub null_text: String,
    /// `SET UNDERLINE` character (None = off).
    pub underline: Option<char>,
    /// `SET WRAP`.
    pub wrap: bool,
    /// `SET ECHO`.
    pub echo: bool,
    /// `SET VERIFY`.
    pub verify: bool,
    /// `SET DEFINE` (substitution character or None).
    pub define: Option<char>,
    /// `SET TERMOUT`.
    pub termout: bool,
    /// `SET TIMING`.
    pub timing: bool,
    /// `SET NEWPAGE` (blank lines before each page).
    pub newpage: usize,
    /// `NLS_DATE_FORMAT` in force.
    pub date_format: String,
    /// `COLUMN` commands by upper-case column name.
    pub columns: HashMap<String, ColumnCmd>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            csv: false,
            csv_delimiter: ",".into(),
            csv_quote: true,
            heading: true,
            feedback: Some(6),
            pagesize: 14,
            linesize: 80,
            colsep: " ".into(),
            numwidth: 10,
            null_text: String::new(),
            underline: Some('-'),
            wrap: true,
            echo: false,
            verify: true,
            define: Some('&'),
            termout: true,
            timing: false,
            newpage: 1,
            date_format: crate::db::sqlfn::DEFAULT_NLS_DATE_FORMAT.into(),
            columns: HashMap::new(),
        }
    }
}

/// How a column's values are shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColKind {
    /// Numbers, right-aligned.
    Number,
    /// Dates, in NLS_DATE_FORMAT.
    Date,
    /// Text of a declared width (None = width of the widest value).
    Text(Option<usize>),
}

/// A result column.
#[derive(Clone, Debug)]
pub struct Column {
    /// Heading text.
    pub heading: String,
    /// Kind.
    pub kind: ColKind,
}

/// Column kind from an SQLite declared type (`NUMBER`, `VARCHAR2(30)`, `DATE`).
pub fn kind_of_decl(decl: Option<&str>) -> Option<ColKind> {
    let d = decl?.to_ascii_uppercase();
    if d.starts_with("DATE") {
        Some(ColKind::Date)
    } else if d.starts_with("VARCHAR") || d.starts_with("CHAR") || d.starts_with("TEXT") {
        let w = d
            .split_once('(')
            .and_then(|(_, r)| r.trim_end_matches(')').trim().parse().ok());
        Some(ColKind::Text(w))
    } else if d.starts_with("NUMBER") || d.starts_with("INT") || d.starts_with("REAL") {
        Some(ColKind::Number)
    } else {
        None
    }
}

/// Kind of an expression column, from its values.
pub fn kind_of_values<'a>(mut values: impl Iterator<Item = &'a Value>) -> ColKind {
    let mut kind = None;
    for v in values.by_ref() {
        match v {
            Value::Null => {}
            Value::Real(r) if is_date_like(*r) => {
                kind.get_or_insert(ColKind::Date);
            }
            Value::Integer(_) | Value::Real(_) => {
                if kind != Some(ColKind::Date) {
                    kind = Some(ColKind::Number);
                }
            }
            _ => return ColKind::Text(None),
        }
    }
    kind.unwrap_or(ColKind::Text(None))
}

/// SQL*Plus number text in a column of `width`: plain digits if they fit,
/// fewer decimals if that fits, else scientific notation, else `#`s.
pub fn number_in_width(v: f64, width: usize) -> String {
    let s = number_text(v);
    if s.len() <= width {
        return s;
    }
    // SQL*Plus drops the leading zero of |v| < 1, which leaves room for one more decimal.
    let int_digits = if v.abs() < 1.0 {
        0
    } else {
        format!("{}", v.abs().trunc() as i128).len()
    };
    let int_len = int_digits + usize::from(v < 0.0);
    if v.fract() != 0.0 && int_len < width {
        let decimals = width - int_len - 1;
        let t = format!("{v:.decimals$}");
        let t = t.trim_end_matches('0').trim_end_matches('.').to_string();
        let t = t
            .strip_prefix("0.")
            .map(|r| format!(".{r}"))
            .or_else(|| t.strip_prefix("-0.").map(|r| format!("-.{r}")))
            .unwrap_or(t);
        if t.len() <= width {
            return t;
        }
    }
    // Scientific: d.ddddE+nn
    for prec in (0..width).rev() {
        let e = format!("{:.*e}", prec, v);
        if let Some((m, x)) = e.split_once('e') {
            let exp: i32 = x.parse().unwrap_or(0);
            let t = format!("{m}E{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
            if t.len() <= width {
                return t;
            }
        }
    }
    "#".repeat(width)
}

/// Text of one value for display.
pub fn value_text(v: &Value, kind: &ColKind, cmd: Option<&ColumnCmd>, s: &Settings) -> String {
    let width = match kind {
        ColKind::Number => s.numwidth,
        _ => usize::MAX,
    };
    match v {
        Value::Null => s.null_text.clone(),
        Value::Integer(i) => match cmd.and_then(|c| c.format.as_ref()) {
            Some(ColumnFormat::Number(m)) => format_number(*i as f64, m).trim().to_string(),
            _ if *kind == ColKind::Date => date_text(*i as f64, s),
            _ => number_in_width(*i as f64, width),
        },
        Value::Real(r) => match cmd.and_then(|c| c.format.as_ref()) {
            Some(ColumnFormat::Number(m)) => format_number(*r, m).trim().to_string(),
            _ if *kind == ColKind::Date => date_text(*r, s),
            _ => number_in_width(*r, width),
        },
        Value::Text(t) => t.clone(),
        Value::Blob(b) => b.iter().map(|x| format!("{x:02X}")).collect(),
    }
}

fn date_text(j: f64, s: &Settings) -> String {
    from_julian(j)
        .and_then(|d| format_date(d, &s.date_format).ok())
        .unwrap_or_default()
}

fn csv_field(text: &str, is_text: bool, s: &Settings) -> String {
    if is_text && s.csv_quote {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Renders a result set as SQL*Plus prints it; returns the output lines.
pub fn render(columns: &[Column], rows: &[Vec<Value>], s: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    let visible: Vec<usize> = (0..columns.len())
        .filter(|&i| {
            !s.columns
                .get(&columns[i].heading.to_ascii_uppercase())
                .is_some_and(|c| c.noprint)
        })
        .collect();
    let cmd = |i: usize| s.columns.get(&columns[i].heading.to_ascii_uppercase());
    let heading = |i: usize| {
        cmd(i)
            .and_then(|c| c.heading.clone())
            .unwrap_or_else(|| columns[i].heading.clone())
    };
    if s.csv {
        if s.heading {
            let h: Vec<String> = visible
                .iter()
                .map(|&i| csv_field(&heading(i), true, s))
                .collect();
            out.push(h.join(&s.csv_delimiter));
        }
        for r in rows {
            let f: Vec<String> = visible
                .iter()
                .map(|&i| {
                    let is_text =
                        !matches!(columns[i].kind, ColKind::Number) && !matches!(r[i], Value::Null);
                    let t = match (&r[i], &columns[i].kind) {
                        (Value::Integer(v), ColKind::Number) => number_text(*v as f64),
                        (Value::Real(v), ColKind::Number) => number_text(*v),
                        (v, k) => value_text(v, k, cmd(i), s),
                    };
                    csv_field(&t, is_text, s)
                })
                .collect();
            out.push(f.join(&s.csv_delimiter));
        }
        feedback(rows.len(), s, &mut out, false);
        return out;
    }
    if rows.is_empty() {
        feedback(0, s, &mut out, true);
        return out;
    }
    // Column widths.
    let texts: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            visible
                .iter()
                .map(|&i| value_text(&r[i], &columns[i].kind, cmd(i), s))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = visible
        .iter()
        .enumerate()
        .map(|(vi, &i)| {
            let h = heading(i).chars().count();
            match (cmd(i).and_then(|c| c.format.clone()), &columns[i].kind) {
                (Some(ColumnFormat::Text(w)), _) => w.max(1),
                (Some(ColumnFormat::Number(m)), _) => (m.len() + 1).max(h),
                (None, ColKind::Number) => s.numwidth.max(h),
                (None, ColKind::Date) => {
                    let w = texts
                        .iter()
                        .map(|t| t[vi].chars().count())
                        .max()
                        .unwrap_or(0);
                    w.max(9)
                }
                (None, ColKind::Text(Some(w))) => (*w).max(1),
                (None, ColKind::Text(None)) => texts
                    .iter()
                    .map(|t| t[vi].chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(h)
                    .max(1),
            }
        })
        .collect();
    let right: Vec<bool> = visible
        .iter()
        .map(|&i| {
            columns[i].kind == ColKind::Number
                && !matches!(
                    cmd(i).and_then(|c| c.format.as_ref()),
                    Some(ColumnFormat::Text(_))
                )
        })
        .collect();
    // Columns that do not fit the line continue on the next line.
    let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
    let mut used = 0usize;
    for (vi, w) in widths.iter().enumerate() {
        let need = if groups.last().is_some_and(|g| g.is_empty()) {
            *w
        } else {
            used + s.colsep.len() + w
        };
        if need > s.linesize && groups.last().is_some_and(|g| !g.is_empty()) {
            groups.push(vec![vi]);
            used = *w;
        } else {
            if let Some(g) = groups.last_mut() {
                g.push(vi);
            }
            used = need;
        }
    }
    let pad = |t: &str, w: usize, right: bool| {
        let n = t.chars().count();
        if n >= w {
            t.chars().take(w).collect::<String>()
        } else if right {
            format!("{}{t}", " ".repeat(w - n))
        } else {
            format!("{t}{}", " ".repeat(w - n))
        }
    };
    let header_lines = |out: &mut Vec<String>| {
        for _ in 0..s.newpage {
            out.push(String::new());
        }
        if !s.heading {
            return;
        }
        for g in &groups {
            let h: Vec<String> = g
                .iter()
                .map(|&vi| pad(&heading(visible[vi]), widths[vi], right[vi]))
                .collect();
            out.push(h.join(&s.colsep).trim_end().to_string());
            if let Some(u) = s.underline {
                let d: Vec<String> = g
                    .iter()
                    .map(|&vi| u.to_string().repeat(widths[vi]))
                    .collect();
                out.push(d.join(&s.colsep));
            }
        }
    };
    let per_page = if s.pagesize == 0 {
        u64::MAX
    } else {
        let head = if s.heading {
            groups.len() as u64 * if s.underline.is_some() { 2 } else { 1 }
        } else {
            0
        };
        s.pagesize.saturating_sub(head + s.newpage as u64).max(1)
    };
    let mut on_page = 0u64;
    for (ri, t) in texts.iter().enumerate() {
        if s.pagesize > 0 && (ri == 0 || on_page >= per_page) {
            header_lines(&mut out);
            on_page = 0;
        }
        for g in &groups {
            // Wrap long values inside their column.
            let pieces: Vec<Vec<String>> = g
                .iter()
                .map(|&vi| {
                    let chars: Vec<char> = t[vi].chars().collect();
                    if chars.len() <= widths[vi] || !s.wrap {
                        vec![t[vi].clone()]
                    } else {
                        chars
                            .chunks(widths[vi])
                            .map(|c| c.iter().collect())
                            .collect()
                    }
                })
                .collect();
            let lines = pieces.iter().map(Vec::len).max().unwrap_or(1);
            for l in 0..lines {
                let cells: Vec<String> = g
                    .iter()
                    .zip(&pieces)
                    .map(|(&vi, p)| pad(p.get(l).map_or("", String::as_str), widths[vi], right[vi]))
                    .collect();
                out.push(cells.join(&s.colsep).trim_end().to_string());
            }
            on_page += lines as u64;
        }
    }
    feedback(rows.len(), s, &mut out, false);
    out
}

fn feedback(n: usize, s: &Settings, out: &mut Vec<String>, empty: bool) {
    let Some(threshold) = s.feedback else {
        if !s.csv && s.pagesize > 0 && !empty {
            out.push(String::new());
        }
        return;
    };
    if empty {
        out.push(String::new());
        out.push("no rows selected".into());
        out.push(String::new());
        return;
    }
    if !s.csv && s.pagesize > 0 {
        out.push(String::new());
    }
    if n as u64 >= threshold {
        if s.csv || s.pagesize == 0 {
            out.push(String::new());
        }
        out.push(if n == 1 {
            "1 row selected.".into()
        } else {
            format!("{n} rows selected.")
        });
        out.push(String::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<Column> {
        vec![
            Column {
                heading: "THREAD#".into(),
                kind: ColKind::Number,
            },
            Column {
                heading: "STATUS".into(),
                kind: ColKind::Text(Some(1)),
            },
        ]
    }

    #[test]
    fn plain_layout() {
        let rows = vec![
            vec![Value::Integer(1), Value::Text("A".into())],
            vec![Value::Integer(12), Value::Text("D".into())],
        ];
        let out = render(&cols(), &rows, &Settings::default());
        assert_eq!(
            out,
            vec![
                "",
                "   THREAD# S",
                "---------- -",
                "         1 A",
                "        12 D",
                ""
            ]
        );
    }

    #[test]
    fn feedback_and_pages() {
        let rows: Vec<_> = (0..12)
            .map(|i| vec![Value::Integer(i), Value::Text("A".into())])
            .collect();
        let out = render(&cols(), &rows, &Settings::default());
        assert_eq!(out.iter().filter(|l| l.contains("THREAD#")).count(), 2);
        assert_eq!(out[out.len() - 2], "12 rows selected.");
        let s = Settings {
            pagesize: 0,
            feedback: None,
            ..Settings::default()
        };
        let out = render(&cols(), &rows, &s);
        assert_eq!(out.len(), 12);
        assert_eq!(out[0], "         0 A");
        assert_eq!(
            render(&cols(), &[], &Settings::default()),
            vec!["", "no rows selected", ""]
        );
    }

    #[test]
    fn csv() {
        let s = Settings {
            csv: true,
            ..Settings::default()
        };
        let rows = vec![vec![Value::Integer(1), Value::Text("a\"b".into())]];
        assert_eq!(
            render(&cols(), &rows, &s),
            vec!["\"THREAD#\",\"STATUS\"", "1,\"a\"\"b\""]
        );
        let s = Settings {
            csv: true,
            csv_quote: false,
            heading: false,
            ..Settings::default()
        };
        assert_eq!(render(&cols(), &rows, &s), vec!["1,a\"b"]);
    }

    #[test]
    fn numbers() {
        assert_eq!(number_in_width(12345678901.0, 10), "1.2346E+10");
        assert_eq!(number_in_width(1.0 / 3.0, 10), ".333333333");
        assert_eq!(number_in_width(42.0, 10), "42");
        assert_eq!(number_in_width(-0.5, 10), "-.5");
    }
}
