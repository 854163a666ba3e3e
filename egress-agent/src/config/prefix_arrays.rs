//! The allowlist arrays of a config file read straight from the text: a TOML document tree
//! costs about 230 bytes an array element, so a million-line `allow.exempt` would need 250 MB
//! to parse (issue 15). `toml_parser`'s lexer streams the tokens; this module only follows
//! table headers and keys to find the six prefix arrays, reads their strings into
//! [`PrefixList`]s, and blanks them in the text, which `toml` then parses as usual.
//!
//! Anything it does not expect (an array of non-strings, an inline table, a syntax error) makes
//! it give up and leave the whole text to `toml`, whose errors then name the line. Blanking
//! keeps every byte offset and newline, so line numbers in errors stay those of the file.

use std::borrow::Cow;

use toml_parser::{
    Source, Span,
    lexer::{Lexer, Token, TokenKind},
};

use super::prefix_list::{PrefixList, PrefixListBuilder};
use crate::allowlist::AllowKind;

/// The lists found in `text`, and `text` with their arrays blanked in place (no copy: the
/// file may be tens of megabytes). Nothing found, or nothing this module could read: no
/// lists, and `text` unchanged.
pub fn extract(text: String) -> (String, Vec<(AllowKind, PrefixList)>) {
    let mut found = Vec::new();
    if Scanner::new(&text).document(&mut found).is_none() {
        return (text, Vec::new());
    }
    let mut bytes = text.into_bytes();
    let mut lists = Vec::with_capacity(found.len());
    for array in found {
        for byte in &mut bytes[array.interior.start()..array.interior.end()] {
            if !matches!(*byte, b'\n' | b'\r') {
                *byte = b' ';
            }
        }
        lists.push((array.kind, array.list));
    }
    // Only whole tokens between `[` and `]` became ASCII spaces: still UTF-8.
    match String::from_utf8(bytes) {
        Ok(skeleton) => (skeleton, lists),
        Err(err) => (
            String::from_utf8_lossy(err.as_bytes()).into_owned(),
            Vec::new(),
        ),
    }
}

struct Array {
    kind: AllowKind,
    interior: Span,
    list: PrefixList,
}

struct Scanner<'t> {
    source: Source<'t>,
    lexer: Lexer<'t>,
    peeked: Option<Token>,
}

impl<'t> Scanner<'t> {
    fn new(text: &'t str) -> Scanner<'t> {
        let source = Source::new(text);
        Scanner {
            source,
            lexer: source.lex(),
            peeked: None,
        }
    }

    /// The next token that is not whitespace or a comment. The lexer ends with one `Eof`
    /// token, which the scanner puts back whenever it stops at one: `None` past it.
    fn next(&mut self) -> Option<Token> {
        loop {
            let token = self.raw_next()?;
            if !matches!(token.kind(), TokenKind::Whitespace | TokenKind::Comment) {
                return Some(token);
            }
        }
    }

    fn raw_next(&mut self) -> Option<Token> {
        self.peeked.take().or_else(|| self.lexer.next())
    }

    /// The next token that is not whitespace, a comment or a newline.
    fn next_on_any_line(&mut self) -> Option<Token> {
        loop {
            let token = self.next()?;
            if token.kind() != TokenKind::Newline {
                return Some(token);
            }
        }
    }

    fn document(&mut self, found: &mut Vec<Array>) -> Option<()> {
        // The current table's key path; `None` inside an array of tables (`[[interface]]`),
        // which holds no prefix list.
        let mut table: Option<Vec<String>> = Some(Vec::new());
        loop {
            let token = self.next_on_any_line()?;
            match token.kind() {
                TokenKind::Eof => return Some(()),
                TokenKind::LeftSquareBracket => table = self.header()?,
                _ => {
                    let mut path = self.key(token, TokenKind::Equals)?;
                    let value = self.next()?;
                    let kind = table.as_ref().and_then(|table| {
                        path.splice(0..0, table.iter().cloned());
                        list_kind(&path)
                    });
                    match kind {
                        Some(kind) if value.kind() == TokenKind::LeftSquareBracket => {
                            found.push(self.string_array(kind, value)?);
                        }
                        _ => self.skip_value(value)?,
                    }
                    self.end_of_line()?;
                }
            }
        }
    }

    /// After `[`: a `[table]` header's path, or `None` for an `[[array.table]]`.
    fn header(&mut self) -> Option<Option<Vec<String>>> {
        let first = self.raw_next()?;
        if first.kind() == TokenKind::LeftSquareBracket {
            let start = self.next()?;
            self.key(start, TokenKind::RightSquareBracket)?;
            expect(self.raw_next()?, TokenKind::RightSquareBracket)?;
            self.end_of_line()?;
            return Some(None);
        }
        self.peeked = Some(first);
        let start = self.next()?;
        let path = self.key(start, TokenKind::RightSquareBracket)?;
        self.end_of_line()?;
        Some(Some(path))
    }

    /// A dotted key starting at `first`, up to and including `end`.
    fn key(&mut self, first: Token, end: TokenKind) -> Option<Vec<String>> {
        let mut path = vec![self.key_part(first)?];
        loop {
            let token = self.next()?;
            match token.kind() {
                TokenKind::Dot => {
                    let part = self.next()?;
                    path.push(self.key_part(part)?);
                }
                kind if kind == end => return Some(path),
                _ => return None,
            }
        }
    }

    fn key_part(&self, token: Token) -> Option<String> {
        if !matches!(
            token.kind(),
            TokenKind::Atom | TokenKind::BasicString | TokenKind::LiteralString
        ) {
            return None;
        }
        let raw = self.source.get(token)?;
        let mut key = String::new();
        let mut errors = Vec::new();
        raw.decode_key(&mut key, &mut errors);
        errors.is_empty().then_some(key)
    }

    /// After `key = [`: strings separated by commas, over any number of lines, up to `]`.
    fn string_array(&mut self, kind: AllowKind, open: Token) -> Option<Array> {
        let mut list = PrefixListBuilder::default();
        loop {
            let token = self.next_on_any_line()?;
            match token.kind() {
                TokenKind::RightSquareBracket => return Some(array(kind, open, token, list)),
                TokenKind::BasicString | TokenKind::LiteralString => {
                    list.push(&self.string(token)?);
                }
                _ => return None,
            }
            let separator = self.next_on_any_line()?;
            match separator.kind() {
                TokenKind::Comma => {}
                TokenKind::RightSquareBracket => return Some(array(kind, open, separator, list)),
                _ => return None,
            }
        }
    }

    fn string(&self, token: Token) -> Option<Cow<'t, str>> {
        let raw = self.source.get(token)?;
        let mut text = Cow::Borrowed("");
        let mut errors = Vec::new();
        let _ = raw.decode_scalar(&mut text, &mut errors);
        errors.is_empty().then_some(text)
    }

    /// Any other value: its tokens up to the end of its line, or of its brackets.
    fn skip_value(&mut self, first: Token) -> Option<()> {
        let mut depth = 0usize;
        let mut token = first;
        loop {
            match token.kind() {
                TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => depth += 1,
                TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                    depth = depth.checked_sub(1)?;
                }
                TokenKind::Newline if depth == 0 => {
                    self.peeked = Some(token);
                    return Some(());
                }
                TokenKind::Eof => {
                    self.peeked = Some(token);
                    return (depth == 0).then_some(());
                }
                _ => {}
            }
            token = self.next()?;
        }
    }

    /// Only whitespace or a comment may follow on the line.
    fn end_of_line(&mut self) -> Option<()> {
        let token = self.next()?;
        match token.kind() {
            TokenKind::Newline => Some(()),
            TokenKind::Eof => {
                self.peeked = Some(token);
                Some(())
            }
            _ => None,
        }
    }
}

fn array(kind: AllowKind, open: Token, close: Token, list: PrefixListBuilder) -> Array {
    Array {
        kind,
        interior: Span::new_unchecked(open.span().end(), close.span().start()),
        list: list.finish(),
    }
}

fn expect(token: Token, kind: TokenKind) -> Option<()> {
    (token.kind() == kind).then_some(())
}

/// The allowlist kind whose config key is `path` (`["allow", "exempt"]`), compared part by part
/// so a quoted key holding a dot never matches.
fn list_kind(path: &[String]) -> Option<AllowKind> {
    AllowKind::ALL.into_iter().find(|kind| {
        kind.config_key()
            .split('.')
            .eq(path.iter().map(String::as_str))
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, parse};

    /// What `toml` alone makes of `text`: the reference every extraction must match.
    fn plain(text: &str) -> Config {
        toml::from_str(text).expect("valid config")
    }

    const FULL: &str = r#"
mode = "monitor"   # a comment
blocked_ports = [25, 2525]

[[interface]]
name = "sub0"
hook = "xdp"

[allow]
relays = ["192.0.2.10", '198.51.100.0/24',]
exempt = [
  # customers with their own mail servers
  "203.0.113.0/28",   # one
  "\u0032001:db8::/48",
  'x-invalid',
]
"destinations" = [ ]

[inbound]
ports = [25]
protected_mx = ["192.0.2.25"]
inbound.ignored = 1
"#;

    #[test]
    fn lists_read_from_the_text_equal_those_toml_reads() {
        let text = FULL.replace("inbound.ignored = 1\n", "mx_senders = [\"192.0.2.26\"]\n");
        let (skeleton, lists) = extract(text.clone());
        let kinds: Vec<AllowKind> = lists.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(
            kinds,
            [
                AllowKind::Relay,
                AllowKind::Exempt,
                AllowKind::Destination,
                AllowKind::ProtectedMx,
                AllowKind::MxSender
            ]
        );
        assert_eq!(skeleton.len(), text.len());
        assert_eq!(skeleton.lines().count(), text.lines().count());
        assert!(!skeleton.contains("203.0.113.0"));
        let config: Config = toml::from_str(&skeleton).expect("skeleton parses");
        assert!(config.allow.exempt.is_empty());
        assert_eq!(config.interfaces.len(), 1);
        // The whole pipeline, invalid entry and all, against toml on the original text.
        let err = parse(Path::new("t.toml"), &text).expect_err("x-invalid is refused");
        assert!(err.to_string().contains("allow.exempt[2]"), "{err}");
        let valid = text.replace("  'x-invalid',\n", "");
        let ours = parse(Path::new("t.toml"), &valid).expect("valid");
        assert_eq!(ours, plain(&valid));
        assert_eq!(ours.allow.exempt.len(), 2);
        assert_eq!(ours.inbound.mx_senders.len(), 1);
    }

    #[test]
    fn dotted_and_nested_keys_find_their_list() {
        let text = "allow.exempt = [\"192.0.2.1\"]\n\n[inbound.throttle]\ndestinations = [\"192.0.2.25\"]\nburst = 5\n";
        assert_eq!(extract(text.to_owned()).1.len(), 2);
        let ours = parse(Path::new("t.toml"), text).expect("valid");
        assert_eq!(ours, plain(text));
        assert_eq!(ours.inbound.throttle.destinations.len(), 1);
    }

    #[test]
    fn crlf_files_and_quoted_headers_read_the_same() {
        let text = "[\"allow\"]\r\nexempt = [\r\n  \"192.0.2.1\", # one\r\n  '192.0.2.2',\r\n]\r\n";
        assert_eq!(extract(text.to_owned()).1.len(), 1);
        let ours = parse(Path::new("t.toml"), text).expect("valid");
        assert_eq!(ours, plain(text));
        assert_eq!(ours.allow.exempt.len(), 2);
        // A quoted key holding a dot is one key, not `allow.exempt`.
        let quoted = "\"allow.exempt\" = [\"192.0.2.1\"]\n";
        assert!(extract(quoted.to_owned()).1.is_empty());
        assert!(parse(Path::new("t.toml"), quoted).is_err(), "unknown key");
    }

    #[test]
    fn anything_unexpected_is_left_to_toml() {
        for text in [
            "[allow]\nexempt = [1, 2]\n",
            "[allow]\nexempt = [[\"192.0.2.1\"]]\n",
            "[allow]\nexempt = [\"192.0.2.1\" \"192.0.2.2\"]\n",
            "[allow]\nexempt = [\"192.0.2.1\"] extra\n",
            "allow = { exempt = [\"192.0.2.1\"] }\n",
            "[allow\nexempt = []\n",
            "[allow]\nexempt = [\"192.0.2.1\"\n",
        ] {
            let (unchanged, lists) = extract(text.to_owned());
            assert!(lists.is_empty() && unchanged == text, "{text}");
        }
        let inline = "allow = { exempt = [\"192.0.2.1\"] }\n";
        assert_eq!(
            parse(Path::new("t.toml"), inline).expect("valid"),
            plain(inline)
        );
        let err = parse(Path::new("t.toml"), "[allow]\nexempt = [1]\n").expect_err("not strings");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn an_error_after_a_long_list_names_its_own_line() {
        let mut text = String::from("[allow]\nexempt = [\n");
        for i in 0..1000 {
            text.push_str(&format!("  \"100.64.{}.{}\",\n", i / 256, i % 256));
        }
        text.push_str("]\nbogus = true\n");
        let err = parse(Path::new("t.toml"), &text).expect_err("unknown key");
        assert!(err.to_string().contains("line 1004"), "{err}");
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}
