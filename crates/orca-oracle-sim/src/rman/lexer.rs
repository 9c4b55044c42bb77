//! Tokens of the RMAN command language.
//!
//! Words are case-insensitive keywords or identifiers; strings are single- or double-quoted
//! (a doubled quote inside stands for itself); `#` starts a comment to the end of the line.

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// Keyword or identifier, as written.
    Word(String),
    /// Unsigned integer.
    Int(u64),
    /// Quoted string (contents, quotes removed); `double` tells which quote was used.
    Str { text: String, double: bool },
    /// One of `; { } ( ) , =`.
    Sym(char),
}

/// A token with its position (1-based line and column) and byte span in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
    pub col: usize,
    pub start: usize,
    pub end: usize,
}

/// A character RMAN cannot tokenize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub message: String,
    pub line: usize,
    pub col: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.' | '/' | '-' | ':' | '+' | '*' | '%')
}

/// Splits `src` into tokens.
pub fn lex(src: &str) -> Result<Vec<Token>, LexError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let mut i = 0;
    let mut line = 1;
    let mut line_start = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        let col = pos - line_start + 1;
        if c == '\n' {
            line += 1;
            line_start = pos + 1;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '#' {
            while i < chars.len() && chars[i].1 != '\n' {
                i += 1;
            }
            continue;
        }
        if matches!(c, ';' | '{' | '}' | '(' | ')' | ',' | '=') {
            out.push(Token {
                tok: Tok::Sym(c),
                line,
                col,
                start: pos,
                end: pos + 1,
            });
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            let (tok_line, tok_col) = (line, col);
            let mut text = String::new();
            i += 1;
            loop {
                let Some(&(p, ch)) = chars.get(i) else {
                    return Err(LexError {
                        message: format!("unterminated quoted string starting with {c}"),
                        line: tok_line,
                        col: tok_col,
                    });
                };
                if ch == c {
                    if chars.get(i + 1).map(|x| x.1) == Some(c) {
                        text.push(c);
                        i += 2;
                        continue;
                    }
                    out.push(Token {
                        tok: Tok::Str {
                            text,
                            double: c == '"',
                        },
                        line: tok_line,
                        col: tok_col,
                        start: pos,
                        end: p + 1,
                    });
                    i += 1;
                    break;
                }
                if ch == '\n' {
                    line += 1;
                    line_start = p + 1;
                }
                text.push(ch);
                i += 1;
            }
            continue;
        }
        if is_word_char(c) || c == '@' {
            i += 1;
            while i < chars.len() && is_word_char(chars[i].1) {
                i += 1;
            }
            let end = chars.get(i).map_or(src.len(), |x| x.0);
            let text = &src[pos..end];
            let tok = if text.bytes().all(|b| b.is_ascii_digit()) {
                match text.parse() {
                    Ok(n) => Tok::Int(n),
                    Err(_) => Tok::Word(text.to_string()),
                }
            } else {
                Tok::Word(text.to_string())
            };
            out.push(Token {
                tok,
                line,
                col,
                start: pos,
                end,
            });
            continue;
        }
        return Err(LexError {
            message: format!("invalid character {c:?}"),
            line,
            col,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn words_numbers_strings_symbols() {
        assert_eq!(
            toks("backup datafile 1,2 section size 100M tag 'it''s'; # comment\n}"),
            vec![
                Tok::Word("backup".into()),
                Tok::Word("datafile".into()),
                Tok::Int(1),
                Tok::Sym(','),
                Tok::Int(2),
                Tok::Word("section".into()),
                Tok::Word("size".into()),
                Tok::Word("100M".into()),
                Tok::Word("tag".into()),
                Tok::Str {
                    text: "it's".into(),
                    double: false
                },
                Tok::Sym(';'),
                Tok::Sym('}'),
            ]
        );
    }

    #[test]
    fn positions_are_tracked() {
        let t = lex("run {\n  backup database;\n}").unwrap();
        assert_eq!((t[2].line, t[2].col), (2, 3));
        assert_eq!((t[5].line, t[5].col), (3, 1));
    }

    #[test]
    fn unterminated_string_is_an_error() {
        assert!(lex("sql 'alter system").is_err());
        assert!(lex("backup database !").is_err());
    }
}
