//! Free text as words and numbers.
//!
//! People type replies on phone keyboards: any case, curly apostrophes,
//! "p.m.", "5pm", "17.30", "6-8pm", emoji. The tokenizer folds all of that
//! into a short list of lower-case words, digit runs and the three symbols
//! the grammar cares about (`:` `-` `#`), and drops everything else, so the
//! grammar in the parent module never sees raw characters.

/// Longest reply read at all: nobody answers "when may we call?" with a
/// page of text, and the cap bounds the work done on hostile input.
pub const MAX_REPLY_BYTES: usize = 1024;

/// Digit runs longer than this are no time, delay or option number.
const MAX_DIGITS: usize = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Word(String),
    /// A run of ASCII digits; `value` is `None` when it is too long to mean
    /// anything to a reply.
    Number {
        value: Option<u32>,
        digits: usize,
        leading_zero: bool,
    },
    Colon,
    Dash,
    Hash,
}

impl Token {
    pub(crate) fn word(&self) -> Option<&str> {
        match self {
            Token::Word(w) => Some(w),
            _ => None,
        }
    }
}

/// Splits `text` into tokens. Never fails: characters that mean nothing
/// here separate tokens.
pub(crate) fn tokenize(text: &str) -> Vec<Token> {
    let folded = fold(text);
    let chars: Vec<char> = folded.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c.is_ascii_digit() {
            let start = i;
            while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                i += 1;
            }
            let run: String = chars[start..i].iter().collect();
            tokens.push(number(&run));
            continue;
        }
        if c.is_alphabetic() {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|c| c.is_alphabetic() || *c == '\'')
            {
                i += 1;
            }
            let run: String = chars[start..i].iter().collect();
            // "tomorrow's fine", "it's": the possessive adds nothing.
            let run = run.trim_end_matches('\'');
            let run = run.strip_suffix("'s").unwrap_or(run);
            tokens.push(Token::Word(run.to_string()));
            continue;
        }
        let between_digits = i > 0
            && chars.get(i - 1).is_some_and(|c| c.is_ascii_digit())
            && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit());
        match c {
            ':' => tokens.push(Token::Colon),
            // "17.30" is how a good part of the world writes a time.
            '.' if between_digits => tokens.push(Token::Colon),
            '-' | '\u{2013}' | '\u{2014}' | '\u{2212}' => tokens.push(Token::Dash),
            '#' => tokens.push(Token::Hash),
            _ => {}
        }
        i += 1;
    }
    tokens
}

fn number(run: &str) -> Token {
    let digits = run.len();
    let value = if digits <= MAX_DIGITS {
        run.parse::<u32>().ok()
    } else {
        None
    };
    Token::Number {
        value,
        digits,
        leading_zero: digits > 1 && run.starts_with('0'),
    }
}

/// Lower-cases and rewrites the spellings that would otherwise split into
/// meaningless pieces ("p.m." would become "p" and "m").
fn fold(text: &str) -> String {
    let mut s = text.to_lowercase();
    for (from, to) in [
        ('\u{2019}', "'"),
        ('\u{2018}', "'"),
        ('`', "'"),
        ('\u{b4}', "'"),
        ('@', " at "),
        ('&', " and "),
        ('~', " about "),
        ('\u{1f44d}', " yes "),
    ] {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    for (from, to) in [
        ("a.m.", "am "),
        ("p.m.", "pm "),
        ("a.m", "am "),
        ("p.m", "pm "),
    ] {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Token {
        Token::Word(s.to_string())
    }

    fn n(v: u32, digits: usize) -> Token {
        Token::Number {
            value: Some(v),
            digits,
            leading_zero: false,
        }
    }

    #[test]
    fn keyboard_spellings_fold_into_words_and_numbers() {
        assert_eq!(tokenize("5pm"), vec![n(5, 1), w("pm")]);
        assert_eq!(tokenize("5 P.M."), vec![n(5, 1), w("pm")]);
        assert_eq!(tokenize("17.30"), vec![n(17, 2), Token::Colon, n(30, 2)]);
        assert_eq!(tokenize("Don\u{2019}t call!!"), vec![w("don't"), w("call")]);
        assert_eq!(
            tokenize("6-8pm"),
            vec![n(6, 1), Token::Dash, n(8, 1), w("pm")]
        );
        assert_eq!(tokenize("#2."), vec![Token::Hash, n(2, 1)]);
        assert_eq!(tokenize("\u{1f44d}"), vec![w("yes")]);
        assert_eq!(
            tokenize("08"),
            vec![Token::Number {
                value: Some(8),
                digits: 2,
                leading_zero: true
            }]
        );
        assert_eq!(
            tokenize("99999999999"),
            vec![Token::Number {
                value: None,
                digits: 11,
                leading_zero: false
            }]
        );
    }
}
