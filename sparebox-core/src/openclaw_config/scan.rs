//! Nesting checks that run before the JSON5 parser, whose recursion has no limit of its
//! own: a few hundred thousand `[` would otherwise overflow the stack.
//!
//! The scan follows the JSON5 lexical rules that decide where brackets count: strings in
//! `"` or `'` with `\` escapes, `//` comments up to a line terminator (LF, CR, U+2028,
//! U+2029) and `/* */` comments. Where the scan and the parser could disagree, the input
//! is invalid and the parser stops with an error before recursing further.

use serde_json::Value;

use super::ConfigError;

/// Refuses `text` if objects and arrays nest deeper than `limit`.
pub(super) fn check_nesting(text: &str, limit: usize) -> Result<(), ConfigError> {
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut column = 0;
    let mut state = State::Code;

    while let Some(c) = chars.next() {
        if is_line_terminator(c) {
            line += 1;
            column = 0;
        } else {
            column += 1;
        }
        state = match state {
            State::Code => match c {
                '[' | '{' => {
                    depth += 1;
                    if depth > limit {
                        return Err(ConfigError::TooDeep {
                            line: Some(line),
                            column: Some(column),
                        });
                    }
                    State::Code
                }
                ']' | '}' => {
                    depth = depth.saturating_sub(1);
                    State::Code
                }
                '"' | '\'' => State::String(c),
                '/' if chars.peek() == Some(&'/') => State::LineComment,
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    column += 1;
                    State::BlockComment
                }
                _ => State::Code,
            },
            State::String(quote) => match c {
                '\\' => State::Escape(quote),
                _ if c == quote => State::Code,
                _ => State::String(quote),
            },
            State::Escape(quote) => State::String(quote),
            State::LineComment if is_line_terminator(c) => State::Code,
            State::LineComment => State::LineComment,
            State::BlockComment if c == '*' && chars.peek() == Some(&'/') => {
                chars.next();
                column += 1;
                State::Code
            }
            State::BlockComment => State::BlockComment,
        };
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum State {
    Code,
    String(char),
    Escape(char),
    LineComment,
    BlockComment,
}

fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

/// The nesting depth of a value, computed without recursion (a scalar is 0).
pub(super) fn value_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(depth + 1);
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(n: usize) -> String {
        format!("{}{}", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn nesting_up_to_the_limit_passes() {
        assert!(check_nesting(&deep(5), 5).is_ok());
        assert!(check_nesting(&deep(6), 5).is_err());
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let text = "{a: '[[[[\\'[[', b: \"{{{{\\\"{\", // [[[[[\n /* {{{{ */ c: [1]}";
        assert!(check_nesting(text, 2).is_ok());
    }

    #[test]
    fn a_line_comment_ends_at_unicode_line_separators_too() {
        let text = format!("// x\u{2028}{}", deep(10));
        assert!(check_nesting(&text, 5).is_err());
    }

    #[test]
    fn too_deep_error_points_at_the_line_and_column() {
        let err = check_nesting("{\n  a: [[[", 3).unwrap_err();
        assert_eq!(
            err,
            ConfigError::TooDeep {
                line: Some(2),
                column: Some(8)
            }
        );
    }

    #[test]
    fn value_depth_counts_containers() {
        assert_eq!(value_depth(&serde_json::json!(1)), 0);
        assert_eq!(value_depth(&serde_json::json!({"a": [1, {"b": []}]})), 4);
    }
}
