//! Mount names. A name becomes a directory under the store's root, so only plain identifiers
//! pass: it must never be able to name a path outside the root, or the store's own files.

use crate::code::{ApiError, Code};

/// The longest name the contract allows, in bytes.
pub const MAX_NAME: usize = 255;

/// Accepts `[A-Za-z0-9_.-]{1,255}` not starting with `.` (which rules out `.`, `..` and the
/// store's hidden `.orca-store` directory). Everything else, slashes and NUL included, is
/// refused before it reaches the filesystem.
pub fn validate_mount(name: &str) -> Result<(), ApiError> {
    let bad = |why: &str| {
        Err(ApiError::new(
            Code::InvalidMountName,
            format!(
                "{why}: use 1 to {MAX_NAME} letters, digits, '_', '-' or '.', not starting with '.'"
            ),
        ))
    };
    if name.is_empty() {
        return bad("the name is empty");
    }
    if name.len() > MAX_NAME {
        return bad(&format!("the name is {} bytes long", name.len()));
    }
    if name.starts_with('.') {
        return bad("the name starts with '.'");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return bad(&format!("the name holds {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_pass_and_paths_do_not() {
        for ok in ["testmount", "ORCL_prod-1", "a.b", &"x".repeat(255)] {
            validate_mount(ok).unwrap();
        }
        for bad in [
            "",
            "a/b",
            "..",
            ".",
            "../etc",
            "a\0b",
            ".orca-store",
            &"x".repeat(256),
            &"x".repeat(300),
            "a b",
            "é",
        ] {
            let e = validate_mount(bad).unwrap_err();
            assert_eq!(e.code, Code::InvalidMountName, "{bad:?}");
        }
    }
}
