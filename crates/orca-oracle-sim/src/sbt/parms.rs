//! The channel PARMS string: `SBT_LIBRARY=<path>, ENV=(A=1,B=2), BLKSIZE=n, SBT_PARMS=(...)`.

use serde::{Deserialize, Serialize};

/// SBT buffer size RMAN uses when PARMS has no BLKSIZE.
pub const DEFAULT_BLKSIZE: usize = 262_144;
/// Longest PARMS string Oracle accepts.
pub const PARMS_MAX: usize = 1000;

/// A parsed PARMS string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelParms {
    /// `SBT_LIBRARY=`; None means the default `$ORACLE_HOME/lib/libobk.so`.
    pub library: Option<String>,
    /// `ENV=(...)` then `SBT_PARMS=(...)`, in order: both become environment variables of the
    /// channel server process (Oracle's delivery of SBT_PARMS is undocumented; the environment is
    /// where libraries look for them).
    pub env: Vec<(String, String)>,
    /// `BLKSIZE=`: the sbtwrite2/sbtread2 buffer size.
    pub blksize: Option<usize>,
}

impl ChannelParms {
    /// Buffer size for sbtbackup/sbtrestore.
    pub fn blksize(&self) -> usize {
        self.blksize.unwrap_or(DEFAULT_BLKSIZE)
    }
}

/// A PARMS string the simulator cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid PARMS string: {0}")]
pub struct ParmsError(pub String);

/// Parse a PARMS string. Items are separated by commas and/or whitespace (RMAN accepts an ENV
/// list on its own line without a comma).
pub fn parse_parms(s: &str) -> Result<ChannelParms, ParmsError> {
    if s.len() > PARMS_MAX {
        return Err(ParmsError(format!(
            "{} bytes, Oracle accepts at most {PARMS_MAX}",
            s.len()
        )));
    }
    let mut out = ChannelParms::default();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let skip_sep = |i: &mut usize| {
        while *i < chars.len() && (chars[*i].is_whitespace() || chars[*i] == ',') {
            *i += 1;
        }
    };
    loop {
        skip_sep(&mut i);
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() && chars[i] != ',' {
            i += 1;
        }
        let key: String = chars[start..i]
            .iter()
            .collect::<String>()
            .to_ascii_uppercase();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() || chars[i] != '=' {
            return Err(ParmsError(format!("expected '=' after {key}")));
        }
        i += 1;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let value: String = if i < chars.len() && chars[i] == '(' {
            let open = i;
            let mut depth = 0;
            loop {
                if i >= chars.len() {
                    return Err(ParmsError(format!("unbalanced parenthesis in {key}")));
                }
                match chars[i] {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            i += 1;
            chars[open + 1..i - 1].iter().collect()
        } else {
            let vs = i;
            while i < chars.len() && chars[i] != ',' && !chars[i].is_whitespace() {
                i += 1;
            }
            chars[vs..i].iter().collect()
        };
        match key.as_str() {
            "SBT_LIBRARY" => {
                if value.is_empty() {
                    return Err(ParmsError("SBT_LIBRARY has no value".into()));
                }
                out.library = Some(value);
            }
            "ENV" | "SBT_PARMS" => out.env.extend(parse_env_list(&key, &value)?),
            "BLKSIZE" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| ParmsError(format!("BLKSIZE={value} is not a number")))?;
                if n == 0 || !n.is_multiple_of(512) {
                    return Err(ParmsError(format!(
                        "BLKSIZE={n} must be a positive multiple of 512"
                    )));
                }
                out.blksize = Some(n);
            }
            other => {
                return Err(ParmsError(format!(
                    "unknown item {other}; expected SBT_LIBRARY, ENV, SBT_PARMS or BLKSIZE"
                )));
            }
        }
    }
    Ok(out)
}

/// `A=1,B=2` (also the body of `SEND 'ENV=(...)'`).
pub fn parse_env_list(key: &str, body: &str) -> Result<Vec<(String, String)>, ParmsError> {
    body.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| ParmsError(format!("{key} item {item:?} is not NAME=value")))?;
            let k = k.trim();
            if k.is_empty() || k.contains(char::is_whitespace) {
                return Err(ParmsError(format!("{key} item {item:?} has a bad name")));
            }
            Ok((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_env_and_blksize() {
        let p = parse_parms(
            "SBT_LIBRARY=/usr/lib/libobk.so, ENV=(OB_SERVER=h, OB_USER=u),BLKSIZE=1048576",
        )
        .unwrap();
        assert_eq!(p.library.as_deref(), Some("/usr/lib/libobk.so"));
        assert_eq!(
            p.env,
            vec![
                ("OB_SERVER".into(), "h".into()),
                ("OB_USER".into(), "u".into())
            ]
        );
        assert_eq!(p.blksize(), 1_048_576);
    }

    #[test]
    fn env_on_its_own_line_without_comma() {
        let p = parse_parms("SBT_LIBRARY=/x/lib.so\n ENV=(A=1)").unwrap();
        assert_eq!(p.env, vec![("A".into(), "1".into())]);
        assert_eq!(p.blksize(), DEFAULT_BLKSIZE);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_parms("FOO=1").is_err());
        assert!(parse_parms("ENV=(A=1").is_err());
        assert!(parse_parms("BLKSIZE=100").is_err());
        assert!(parse_parms("SBT_LIBRARY").is_err());
    }
}
