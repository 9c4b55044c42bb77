//! Oracle SQL to SQLite: a small lexer and the rewrites that make Oracle
//! queries run on the control file (`THREAD#` quoting, `SYSDATE`, `DATE '..'`
//! literals, `MINUS`, `ROWNUM` limits, `FETCH FIRST n ROWS ONLY`), plus the
//! select-list headings SQL*Plus prints.

/// A lexical token with its byte offset in the original text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: Kind,
    /// Its text as written.
    pub text: String,
    /// Byte offset in the statement.
    pub pos: usize,
}

/// Token kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Unquoted identifier or keyword (may contain `$` and `#`).
    Ident,
    /// `"quoted identifier"`.
    QuotedIdent,
    /// `'string literal'`.
    Str,
    /// Numeric literal.
    Num,
    /// Operator or punctuation.
    Op,
    /// Whitespace.
    Space,
    /// `-- comment` or `/* comment */`.
    Comment,
}

/// Splits a statement into tokens. Unterminated literals run to the end.
pub fn lex(s: &str) -> Vec<Token> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let c = b[i];
        let kind = if c.is_ascii_whitespace() {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            Kind::Space
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            Kind::Comment
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i = (i + 2).min(b.len());
            Kind::Comment
        } else if c == b'\'' {
            i += 1;
            loop {
                if i >= b.len() {
                    break;
                }
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            Kind::Str
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            i = (i + 1).min(b.len());
            Kind::QuotedIdent
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let save = i;
                i += 1;
                if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                    i += 1;
                }
                if i < b.len() && b[i].is_ascii_digit() {
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                } else {
                    i = save;
                }
            }
            Kind::Num
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric()
                    || b[i] == b'_'
                    || b[i] == b'$'
                    || b[i] == b'#'
                    || b[i] >= 0x80)
            {
                i += 1;
            }
            Kind::Ident
        } else {
            let two = s.get(i..i + 2).unwrap_or("");
            i += if ["<=", ">=", "<>", "!=", "||", "^="].contains(&two) {
                2
            } else {
                s[i..].chars().next().map_or(1, char::len_utf8)
            };
            Kind::Op
        };
        out.push(Token {
            kind,
            text: s[start..i].to_string(),
            pos: start,
        });
    }
    out
}

fn upper(t: &Token) -> String {
    t.text.to_ascii_uppercase()
}

fn is(t: Option<&Token>, word: &str) -> bool {
    t.is_some_and(|t| t.kind == Kind::Ident && t.text.eq_ignore_ascii_case(word))
}

/// Indexes of the significant (non-space, non-comment) tokens.
fn significant(toks: &[Token]) -> Vec<usize> {
    toks.iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.kind, Kind::Space | Kind::Comment))
        .map(|(i, _)| i)
        .collect()
}

/// Rewrites an Oracle query for SQLite.
pub fn rewrite(sql: &str) -> String {
    let toks = lex(sql);
    let sig = significant(&toks);
    let mut out: Vec<String> = toks.iter().map(|t| t.text.clone()).collect();
    let mut limit: Option<String> = None;
    let mut offset: Option<String> = None;
    let mut depth = 0i32;
    let mut k = 0;
    while k < sig.len() {
        let i = sig[k];
        let t = &toks[i];
        let next = sig.get(k + 1).map(|&j| &toks[j]);
        match t.kind {
            Kind::Op if t.text == "(" => depth += 1,
            Kind::Op if t.text == ")" => depth -= 1,
            Kind::Ident => {
                let u = upper(t);
                match u.as_str() {
                    "SYSDATE" | "SYSTIMESTAMP" | "CURRENT_DATE" | "CURRENT_TIMESTAMP"
                    | "LOCALTIMESTAMP"
                        if next.is_none_or(|n| n.text != "(") =>
                    {
                        out[i] = "sysdate()".into();
                    }
                    "USER" if next.is_none_or(|n| n.text != "(") => out[i] = "'SYS'".into(),
                    "MINUS" => out[i] = "EXCEPT".into(),
                    "DATE" | "TIMESTAMP" if next.is_some_and(|n| n.kind == Kind::Str) => {
                        let j = sig[k + 1];
                        let lit = toks[j].text.trim_matches('\'');
                        let (val, fmt) = if u == "DATE" {
                            (lit.to_string(), "YYYY-MM-DD")
                        } else {
                            (lit.chars().take(19).collect(), "YYYY-MM-DD HH24:MI:SS")
                        };
                        out[i] = format!("to_date('{val}', '{fmt}')");
                        for t in &mut out[i + 1..=j] {
                            t.clear();
                        }
                        k += 2;
                        continue;
                    }
                    "ROWNUM" if depth == 0 => {
                        // `ROWNUM <= n`, `ROWNUM < n`, `ROWNUM = 1` become a LIMIT.
                        if let (Some(&oi), Some(&ni)) = (sig.get(k + 1), sig.get(k + 2))
                            && toks[ni].kind == Kind::Num
                            && let Ok(n) = toks[ni].text.parse::<i64>()
                        {
                            let lim = match toks[oi].text.as_str() {
                                "<=" => Some(n),
                                "<" => Some(n - 1),
                                "=" if n == 1 => Some(1),
                                _ => None,
                            };
                            if let Some(l) = lim {
                                limit = Some(l.max(0).to_string());
                                out[i] = "1".into();
                                out[oi] = "=".into();
                                out[ni] = "1".into();
                                k += 3;
                                continue;
                            }
                        }
                    }
                    "FETCH" if depth == 0 && (is(next, "FIRST") || is(next, "NEXT")) => {
                        // FETCH FIRST n ROW[S] ONLY
                        if let Some(&ni) = sig.get(k + 2)
                            && toks[ni].kind == Kind::Num
                            && is(sig.get(k + 3).map(|&j| &toks[j]), "ROWS")
                                | is(sig.get(k + 3).map(|&j| &toks[j]), "ROW")
                            && is(sig.get(k + 4).map(|&j| &toks[j]), "ONLY")
                        {
                            limit = Some(toks[ni].text.clone());
                            for &j in &sig[k..k + 5] {
                                out[j] = String::new();
                            }
                            k += 5;
                            continue;
                        }
                    }
                    "OFFSET" if depth == 0 => {
                        if let Some(&ni) = sig.get(k + 1)
                            && toks[ni].kind == Kind::Num
                            && (is(sig.get(k + 2).map(|&j| &toks[j]), "ROWS")
                                || is(sig.get(k + 2).map(|&j| &toks[j]), "ROW"))
                        {
                            // SQLite wants LIMIT before OFFSET: the offset goes last.
                            offset = Some(toks[ni].text.clone());
                            for &j in &sig[k..k + 3] {
                                out[j] = String::new();
                            }
                            k += 3;
                            continue;
                        }
                    }
                    _ => {
                        if t.text.contains('#') {
                            out[i] = format!("\"{u}\"");
                        }
                    }
                }
            }
            _ => {}
        }
        k += 1;
    }
    if offset.is_some() && limit.is_none() {
        limit = Some("-1".into());
    }
    let mut s: String = out.concat();
    if let Some(l) = limit {
        s = format!("{} LIMIT {l}", s.trim_end());
    }
    if let Some(o) = offset {
        s = format!("{} OFFSET {o}", s.trim_end());
    }
    s
}

/// The headings SQL*Plus derives from the select list: the alias, or the
/// expression text in upper case without spaces. `None` for `*` items or
/// when the select list cannot be split.
pub fn select_headings(sql: &str) -> Vec<Option<String>> {
    let toks = lex(sql);
    let sig = significant(&toks);
    let mut k = 0;
    while k < sig.len() && !is(Some(&toks[sig[k]]), "SELECT") {
        k += 1;
    }
    k += 1;
    if is(sig.get(k).map(|&j| &toks[j]), "DISTINCT") || is(sig.get(k).map(|&j| &toks[j]), "ALL") {
        k += 1;
    }
    let mut items: Vec<Vec<usize>> = vec![Vec::new()];
    let mut depth = 0;
    while k < sig.len() {
        let t = &toks[sig[k]];
        if depth == 0 && is(Some(t), "FROM") {
            break;
        }
        match t.text.as_str() {
            "(" => depth += 1,
            ")" => depth -= 1,
            "," if depth == 0 => {
                items.push(Vec::new());
                k += 1;
                continue;
            }
            _ => {}
        }
        if let Some(cur) = items.last_mut() {
            cur.push(sig[k]);
        }
        k += 1;
    }
    items
        .into_iter()
        .map(|it| {
            let last = *it.last()?;
            let lt = &toks[last];
            if lt.text == "*" {
                return None;
            }
            let n = it.len();
            let has_as = n >= 2 && is(Some(&toks[it[n - 2]]), "AS");
            let alias = match lt.kind {
                Kind::QuotedIdent if n >= 2 => Some(lt.text.trim_matches('"').to_string()),
                Kind::Ident if n >= 2 && (has_as || is_alias_position(&toks, &it)) => {
                    Some(lt.text.to_ascii_uppercase())
                }
                _ => None,
            };
            if let Some(a) = alias {
                return Some(a);
            }
            let text: String = it
                .iter()
                .map(|&j| toks[j].text.as_str())
                .collect::<Vec<_>>()
                .concat();
            // Column references show the column name without qualifier.
            let text = if it.len() == 3 && toks[it[1]].text == "." {
                toks[it[2]].text.trim_matches('"').to_string()
            } else {
                text
            };
            Some(upper_outside_quotes(&text))
        })
        .collect()
}

fn is_alias_position(toks: &[Token], it: &[usize]) -> bool {
    // `expr alias`: the token before the alias ends an expression.
    let prev = &toks[it[it.len() - 2]];
    matches!(
        prev.kind,
        Kind::Ident | Kind::QuotedIdent | Kind::Str | Kind::Num
    ) || prev.text == ")"
}

fn upper_outside_quotes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_str = false;
    for c in s.chars() {
        if c == '\'' {
            in_str = !in_str;
        }
        out.push(if in_str { c } else { c.to_ascii_uppercase() });
    }
    out
}

/// The first significant word, upper case.
pub fn first_word(sql: &str) -> String {
    lex(sql)
        .into_iter()
        .find(|t| !matches!(t.kind, Kind::Space | Kind::Comment))
        .map(|t| t.text.to_ascii_uppercase())
        .unwrap_or_default()
}

/// The significant words of a statement, upper case (for command matching).
pub fn words(sql: &str) -> Vec<String> {
    lex(sql)
        .into_iter()
        .filter(|t| !matches!(t.kind, Kind::Space | Kind::Comment))
        .map(|t| {
            if t.kind == Kind::Str {
                t.text
            } else {
                t.text.to_ascii_uppercase()
            }
        })
        .collect()
}

/// Byte offset of the first identifier equal (case-insensitively, quotes
/// removed) to `name`.
pub fn find_ident(sql: &str, name: &str) -> Option<usize> {
    let name = name.trim_matches('"');
    let last = name.rsplit('.').next().unwrap_or(name);
    lex(sql)
        .into_iter()
        .find(|t| {
            matches!(t.kind, Kind::Ident | Kind::QuotedIdent)
                && (t.text.trim_matches('"').eq_ignore_ascii_case(name)
                    || t.text.trim_matches('"').eq_ignore_ascii_case(last))
        })
        .map(|t| t.pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_functions() {
        assert_eq!(
            rewrite("select thread#, sequence# from v$archived_log where first_time > sysdate - 1"),
            "select \"THREAD#\", \"SEQUENCE#\" from v$archived_log where first_time > sysdate() - 1"
        );
        assert_eq!(
            rewrite("select 'a#b' from dual where x = DATE '2026-03-04'"),
            "select 'a#b' from dual where x = to_date('2026-03-04', 'YYYY-MM-DD')"
        );
        assert_eq!(
            rewrite("select * from (select name from v$datafile order by 1) where rownum <= 2"),
            "select * from (select name from v$datafile order by 1) where 1 = 1 LIMIT 2"
        );
        assert_eq!(
            rewrite("select name from v$datafile order by 1 fetch first 3 rows only"),
            "select name from v$datafile order by 1 LIMIT 3"
        );
        assert_eq!(
            rewrite("select 1 from dual minus select 2 from dual"),
            "select 1 from dual EXCEPT select 2 from dual"
        );
    }

    #[test]
    fn headings() {
        assert_eq!(
            select_headings(
                "select thread#, count(*), max(next_change#) mx, name as \"Nm\", d.file# from v$x d"
            ),
            vec![
                Some("THREAD#".into()),
                Some("COUNT(*)".into()),
                Some("MX".into()),
                Some("Nm".into()),
                Some("FILE#".into())
            ]
        );
        assert_eq!(select_headings("select * from dual"), vec![None]);
        assert_eq!(
            select_headings("select to_char(sysdate, 'yyyy') from dual"),
            vec![Some("TO_CHAR(SYSDATE,'yyyy')".into())]
        );
    }

    #[test]
    fn lexer_never_panics_on_odd_input() {
        for s in ["'unterminated", "\"q", "/* x", "1e", "é#$", "--", "a.b.c"] {
            let _ = rewrite(s);
            let _ = select_headings(s);
        }
    }
}
