//! The `rman` command line: `rman target / [nocatalog] [cmdfile=F | @F] [using a b ...]
//! [log=L | msglog=L [append]] [msgno]`.

/// Parsed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// `target <connect>`; `/` or `user/pw@service`.
    pub target: Option<String>,
    pub cmdfile: Option<String>,
    pub log: Option<String>,
    pub append: bool,
    pub msgno: bool,
    pub checksyntax: bool,
    /// USING: the values of the command file's substitution variables `&1`, `&2`, ...
    pub using: Vec<String>,
}

/// A bad command line, rendered as RMAN renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError {
    pub found: String,
    pub bad: Option<String>,
}

impl ArgError {
    pub fn rman_lines(&self) -> Vec<String> {
        let mut v = vec![format!(
            "RMAN-01009: syntax error: found \"{}\": expecting one of: \"append, catalog, checksyntax, cmdfile, log, msglog, msgno, nocatalog, target, using, @\"",
            self.found
        )];
        if let Some(b) = &self.bad {
            v.push(format!("RMAN-01008: the bad identifier was: {b}"));
        }
        v.push("RMAN-01007: at line 0 column 1 file: command line arguments".into());
        v
    }
}

/// Parses argv after the program name. Keywords are case-insensitive; values may follow `=`
/// or come as the next argument.
pub fn parse_args(args: &[String]) -> Result<Args, ArgError> {
    let mut out = Args::default();
    let mut i = 0;
    let value = |i: &mut usize, inline: Option<&str>, key: &str| -> Result<String, ArgError> {
        if let Some(v) = inline {
            return Ok(v.to_string());
        }
        *i += 1;
        let v = args.get(*i).cloned().ok_or_else(|| ArgError {
            found: "end-of-file".into(),
            bad: Some(key.to_string()),
        })?;
        Ok(v.strip_prefix('=').map(str::to_string).unwrap_or(v))
    };
    while i < args.len() {
        let a = args[i].as_str();
        if let Some(f) = a.strip_prefix('@') {
            let f = if f.is_empty() {
                value(&mut i, None, "@")?
            } else {
                f.to_string()
            };
            out.cmdfile = Some(f);
            i += 1;
            continue;
        }
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (a.to_ascii_lowercase(), None),
        };
        match key.as_str() {
            "target" => out.target = Some(value(&mut i, inline, "target")?),
            "cmdfile" => out.cmdfile = Some(value(&mut i, inline, "cmdfile")?),
            "log" | "msglog" => out.log = Some(value(&mut i, inline, &key)?),
            "using" => {
                while let Some(next) = args.get(i + 1)
                    && !is_keyword(next)
                {
                    out.using.push(next.clone());
                    i += 1;
                }
            }
            "append" => out.append = true,
            "msgno" => out.msgno = true,
            "checksyntax" => out.checksyntax = true,
            "nocatalog" => {}
            _ => {
                return Err(ArgError {
                    found: "identifier".into(),
                    bad: Some(a.to_string()),
                });
            }
        }
        i += 1;
    }
    Ok(out)
}

/// Whether a command-line word starts another operand rather than being a USING value.
fn is_keyword(a: &str) -> bool {
    if a.starts_with('@') {
        return true;
    }
    match a.split_once('=') {
        Some((k, _)) => matches!(
            k.to_ascii_lowercase().as_str(),
            "target" | "cmdfile" | "log" | "msglog"
        ),
        None => matches!(
            a.to_ascii_lowercase().as_str(),
            "append" | "msgno" | "checksyntax" | "nocatalog"
        ),
    }
}

/// The command file with `&n` (or `&n.`) replaced by the n-th USING value; a variable
/// without one is asked for, as RMAN asks "Enter value for n:".
pub fn substitute(script: &str, using: &[String], mut ask: impl FnMut(usize) -> String) -> String {
    let mut out = String::with_capacity(script.len());
    let mut rest = script;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(n) if n > 0 => {
                let value = using.get(n - 1).cloned().unwrap_or_else(|| ask(n));
                out.push_str(&value);
                let tail = &after[digits..];
                rest = tail.strip_prefix('.').unwrap_or(tail);
            }
            _ => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn common_forms() {
        let a = parse_args(&v(&["target", "/", "cmdfile=/tmp/x.rcv", "log=/tmp/x.log"])).unwrap();
        assert_eq!(a.target.as_deref(), Some("/"));
        assert_eq!(a.cmdfile.as_deref(), Some("/tmp/x.rcv"));
        assert_eq!(a.log.as_deref(), Some("/tmp/x.log"));
        let a = parse_args(&v(&[
            "TARGET",
            "/",
            "nocatalog",
            "@/tmp/y",
            "LOG",
            "/l",
            "append",
        ]))
        .unwrap();
        assert_eq!(a.cmdfile.as_deref(), Some("/tmp/y"));
        assert!(a.append);
        assert!(parse_args(&v(&["target", "/", "bogus"])).is_err());
        let a = parse_args(&v(&[
            "target",
            "/",
            "@f",
            "USING",
            "/bk",
            "t1",
            "msglog=/l",
            "append",
        ]))
        .unwrap();
        assert_eq!(a.using, ["/bk", "t1"]);
        assert_eq!(a.log.as_deref(), Some("/l"));
        assert!(a.append);
        assert!(parse_args(&v(&["target"])).is_err());
    }

    #[test]
    fn substitution_variables() {
        let using = v(&["/bk", "daily"]);
        let s = substitute(
            "backup database format '&1/%U' tag &2.x tag2 &3 &x && &0;",
            &using,
            |n| format!("<{n}>"),
        );
        assert_eq!(
            s,
            "backup database format '/bk/%U' tag dailyx tag2 <3> &x && &0;"
        );
    }
}
