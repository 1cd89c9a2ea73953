//! Output formats shared by the commands: Go templates, Go's tabwriter, natural sort.

pub mod natsort;
pub mod tabwriter;
pub mod template;

/// Quotes a string as Go's `%q` does.
pub fn go_quote(s: &str) -> String {
    quote_with(s, |_| None)
}

/// Double-quotes `s` with C escapes (`\"`, `\\`, `\n`, `\t`, `\r`, `\xNN` for every other control
/// character), after `extra` has had its say on each character (systemd's `%%`, `$$`).
pub fn quote_with(s: &str, extra: impl Fn(char) -> Option<&'static str>) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if let Some(replacement) = extra(c) {
            out.push_str(replacement);
            continue;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("/a b/c"), "\"/a b/c\"");
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }
}
