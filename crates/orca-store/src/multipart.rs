//! `multipart/form-data` bodies (RFC 7578) as `curl -F` sends them: the few fields `uploadlog`
//! takes, whole in memory (the body size is capped before this runs).

/// One field of the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    /// Present when the client sent a file's contents (`-F file=@path`).
    pub filename: Option<String>,
    pub data: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn boundary(content_type: &str) -> Result<String, String> {
    let mut params = content_type.split(';');
    let kind = params.next().unwrap_or_default().trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(format!(
            "the body is {kind:?}, not multipart/form-data: send the fields with curl -F"
        ));
    }
    params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(|| "the multipart/form-data content type names no boundary".to_string())
}

/// The value of `key="..."` in a `Content-Disposition` header.
fn param(header: &str, key: &str) -> Option<String> {
    header.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().trim_matches('"').to_string())
    })
}

pub fn parse(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let delim = format!("--{}", boundary(content_type)?).into_bytes();
    let mut at = find(body, &delim, 0).ok_or("the body holds no multipart boundary")? + delim.len();
    let mut parts = Vec::new();
    loop {
        if body[at..].starts_with(b"--") {
            return Ok(parts);
        }
        if !body[at..].starts_with(b"\r\n") {
            return Err("malformed multipart body: no line break after a boundary".into());
        }
        at += 2;
        let head_end = find(body, b"\r\n\r\n", at)
            .ok_or("malformed multipart body: a part has no end of headers")?;
        let head = String::from_utf8_lossy(&body[at..head_end]).into_owned();
        let data_start = head_end + 4;
        let mut next = delim.clone();
        next.splice(0..0, *b"\r\n");
        let data_end = find(body, &next, data_start)
            .ok_or("malformed multipart body: a part is not closed by the boundary")?;
        let disposition = head
            .split("\r\n")
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-disposition")
                    .then(|| v.to_string())
            })
            .ok_or("malformed multipart body: a part has no Content-Disposition")?;
        let name =
            param(&disposition, "name").ok_or("malformed multipart body: a part has no name")?;
        parts.push(Part {
            name,
            filename: param(&disposition, "filename"),
            data: body[data_start..data_end].to_vec(),
        });
        at = data_end + next.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=------------------------abc123";

    fn body(parts: &[(&str, Option<&str>, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, file, data) in parts {
            b.extend_from_slice(b"--------------------------abc123\r\n");
            match file {
                Some(f) => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
                ),
                None => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            b.extend_from_slice(data.as_bytes());
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--------------------------abc123--\r\n");
        b
    }

    #[test]
    fn curl_forms_parse() {
        let b = body(&[
            (
                "file",
                Some("x.log"),
                "line 1\r\n--not a boundary\r\nline 2",
            ),
            ("mountpoint", None, "/local/testmount"),
            ("platform", None, "linux"),
        ]);
        let p = parse(CT, &b).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].filename.as_deref(), Some("x.log"));
        assert_eq!(p[0].data, b"line 1\r\n--not a boundary\r\nline 2");
        assert_eq!(p[1].data, b"/local/testmount");
        assert_eq!(p[2].filename, None);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert!(parse("application/json", b"{}").is_err());
        assert!(parse("multipart/form-data", b"x").is_err());
        assert!(parse(CT, b"no boundary here").is_err());
        let mut b = body(&[("file", None, "x")]);
        b.truncate(b.len() - 40);
        assert!(parse(CT, &b).is_err());
        assert!(parse(CT, b"--------------------------abc123\r\nX: y\r\n\r\nz\r\n--------------------------abc123--").is_err());
    }
}
