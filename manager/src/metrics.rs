//! The Prometheus text format that `/metrics` answers in.

/// A Prometheus label value: backslash, double quote and newline escaped, as the text format
/// requires (a worker's name is whatever its operator chose).
pub fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped_for_the_text_format() {
        assert_eq!(super::label("plain-1"), "plain-1");
        assert_eq!(super::label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
