//! The one rule for free text that keygate stores and echoes back: titles, labels, key comments.

/// What the rule allows, as error messages name it.
pub const SAFE_TEXT: &str =
    "text without control, line-separator or bidirectional-control characters";

/// Characters that can rewrite a terminal, a log line or the visual order of what an operator
/// reads: every control character (C0, DEL, C1: ESC, BEL, NUL, …), the Unicode line and paragraph
/// separators (line breaks to JavaScript and many log viewers), and the Unicode `Bidi_Control`
/// set (ALM, LRM, RLM, the embeddings and overrides U+202A–U+202E, the isolates U+2066–U+2069).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Whether `text` is free of every character `is_unsafe` names.
pub fn is_safe(text: &str) -> bool {
    !text.chars().any(is_unsafe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_controls_separators_and_bidi_controls() {
        for c in [
            '\0', '\u{7}', '\u{1b}', '\n', '\t', '\u{7f}', '\u{85}', '\u{9b}', '\u{2028}',
            '\u{2029}', '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202E}', '\u{2066}',
            '\u{2069}',
        ] {
            assert!(!is_safe(&format!("a{c}b")), "{c:?}");
        }
    }

    #[test]
    fn keeps_ordinary_text_in_any_script() {
        for text in [
            "deploy key",
            "CI (prod) #2",
            "部署密钥",
            "ключ",
            "مفتاح",
            "emoji 🔑",
            "a\u{200D}b",
        ] {
            assert!(is_safe(text), "{text:?}");
        }
    }
}
